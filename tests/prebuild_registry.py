"""Fill the test cache with the tiny trained models before the test session needs them.

``make test`` runs this next to the image builds (``make -j2 images test-registry``): training the
tiny models takes minutes of one core while the image builds mostly wait on pip and the disk, so
the session's first test finds the registry ready instead of training it. The cache is keyed and
written atomically (tests/conftest.py): a session that starts before this finishes, or after it
failed, builds the registry itself as before. ``LOOPLINE_TEST_CACHE_DIR=off`` makes this a no-op.
"""

from __future__ import annotations

import sys
import time

from tests.conftest import build_tiny_registry, cached_registry


def main() -> int:
    started = time.monotonic()
    cached = cached_registry(build_tiny_registry)
    if cached is None:
        print("test-registry: the test cache is off (LOOPLINE_TEST_CACHE_DIR=off): the session builds it")
    else:
        print(f"test-registry: {cached} ready in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
