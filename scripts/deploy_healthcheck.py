#!/usr/bin/env python3
"""Container health check: GET /healthz (or --path /readyz) of one Loopline service.

Installed as ``loopline-healthcheck`` in every service image. The port comes from the
same settings the service reads (``LOOPLINE_<SERVICE>_PORT``), so the check can never
probe a different port than the one the service binds. Exit 0 when the answer is 200.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", help="gateway | vqa | qa | style | finetune | watchdog")
    parser.add_argument("--path", default="/healthz", choices=["/healthz", "/readyz"])
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)

    from services.common.settings import CommonSettings

    port = CommonSettings().port_of(args.service)
    url = f"http://127.0.0.1:{port}{args.path}"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310 - fixed loopback URL
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
