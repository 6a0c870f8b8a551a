"""Container layer: real images built with podman, the compose stack, podman kube play."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from container_helpers import REPO, have_podman, image_tag, sh  # noqa: E402


@pytest.fixture(scope="session")
def built_images() -> str:
    """`make images` (a no-op for layers already built) so the layer also runs on its own."""
    missing = have_podman()
    if missing:
        print(f"container layer skipped: {missing}")
        pytest.skip(missing)
    tag = image_tag()
    sh(["make", "--no-print-directory", "images", f"IMAGE_TAG={tag}"], timeout=3600, cwd=REPO)
    return tag
