"""The images, built for real by `make images` with podman: contents, users, sizes."""

from __future__ import annotations

import json
import subprocess

import pytest
from container_helpers import (
    BASE_IMAGE,
    REPO,
    SERVICES,
    TORCH_IMAGES,
    image,
    image_size,
    inspect,
    podman,
    sh,
)

pytestmark = [pytest.mark.container, pytest.mark.slow]

ALL = (*SERVICES, "finetune-full")
MB = 1_000_000
# what each image may add over the base image, from what it must hold (docs/deploy.md, the sizes
# table): finetune is torch's CPU build, the Hugging Face stack and the Kubernetes client (1319 MB
# with requirements.lock) + ~6 %; vqa and qa swap the Kubernetes client for OpenVINO (185 MB, one
# shared layer: LOOPLINE_<TASK>_BACKEND=auto serves fp32 versions there, docs/performance.md), 1397
# MB + ~7 %; gateway and watchdog carry no framework (229 MB)
BOUNDS = {"gateway": 300 * MB, "watchdog": 300 * MB, "vqa": 1500 * MB, "qa": 1500 * MB, "finetune": 1400 * MB}


def run_in(name: str, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--user", user] if user else []
    return podman("run", "--rm", "--network", "none", *extra, image(name), *argv, timeout=180)


PIP_LIST = ("import json, importlib.metadata as m; print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-'): "
            "d.version for d in m.distributions()}.items())))")


def installed(name: str) -> dict[str, str]:
    return dict(json.loads(run_in(name, "python", "-c", PIP_LIST).stdout))


@pytest.fixture(scope="module")
def packages(built_images: str) -> dict[str, dict[str, str]]:
    return {name: installed(name) for name in ALL}


@pytest.mark.parametrize("name", ALL)
def test_no_nvidia_package_in_any_image(packages, name) -> None:
    nvidia = [p for p in packages[name] if "nvidia" in p or p in ("triton", "cuda-toolkit", "cuda-pathfinder")]
    assert not nvidia, f"{name} carries CUDA packages: {nvidia}"
    if name in TORCH_IMAGES or name == "finetune-full":
        assert packages[name]["torch"] == "2.13.0+cpu"
    else:
        assert "torch" not in packages[name], f"{name} does not need torch"


@pytest.mark.parametrize("name", ALL)
def test_image_holds_exactly_the_locked_versions(packages, name) -> None:
    """Every distribution in an image is the lock's version (requirements.lock, `make lock`)."""
    from services.ops import lockfile

    pins = lockfile.parse_lock(REPO / "requirements.lock")
    held = {lockfile.canonical(p): v for p, v in packages[name].items() if lockfile.canonical(p) != "loopline"}
    differ = {p: (v, pins.get(p, ("not locked",))[0]) for p, v in held.items() if pins.get(p, (None,))[0] != v}
    assert not differ, f"{name}: image version vs lock: {differ}"
    assert packages[name]["loopline"] == "0.1.0"


def test_elasticsearch_client_major_matches_the_8x_server(packages) -> None:
    for name in ("gateway", "watchdog", "finetune", "finetune-full"):
        version = packages[name].get("elasticsearch")
        assert version and version.split(".")[0] == "8", f"{name}: elasticsearch client {version}"


def test_the_lean_finetune_image_has_one_framework_and_the_full_one_both(packages) -> None:
    assert "tensorflow-cpu" not in packages["finetune"] and "tensorflow" not in packages["finetune"]
    assert "tensorflow-cpu" in packages["finetune-full"] and "torch" in packages["finetune-full"]
    assert "kubernetes" in packages["finetune"]


@pytest.mark.parametrize("name", BOUNDS)
def test_image_size_over_the_base_is_bounded(built_images, name) -> None:
    added = image_size(image(name)) - image_size(BASE_IMAGE)
    print(f"{name}: {added / MB:.0f} MB over the base (bound {BOUNDS[name] / MB:.0f} MB)")
    assert added < BOUNDS[name]


def test_torch_images_share_their_torch_layers(built_images) -> None:
    layers = {name: inspect(image(name))["RootFS"]["Layers"] for name in TORCH_IMAGES}
    shared = set(layers["vqa"]) & set(layers["qa"]) & set(layers["finetune"])
    # base, user+venv, torch and the torch extra's dependencies at least
    assert len(shared) >= 4, f"only {len(shared)} shared layers"
    assert inspect(image("vqa"))["RootFS"]["Layers"][:len(shared)] == layers["qa"][:len(shared)]
    # and vqa and qa share their OpenVINO layer too: all but the code's layers
    assert len(set(layers["vqa"]) & set(layers["qa"])) >= len(shared) + 1


@pytest.mark.parametrize("name", SERVICES)
def test_image_runs_as_uid_10001_with_its_entry_point_and_healthcheck(built_images, name) -> None:
    config = inspect(image(name))["Config"]
    assert config["User"] == "10001"
    assert config["Cmd"] == ["loopline", "serve", name]
    healthcheck = podman("image", "inspect", "--format", "{{json .HealthCheck}}", image(name)).stdout
    assert "loopline-healthcheck" in healthcheck and name in healthcheck, \
        "HEALTHCHECK dropped (podman needs --format docker)"
    out = run_in(name, "sh", "-c", f"id -u && loopline --help >/dev/null && loopline-healthcheck --help >/dev/null "
                                   f"&& python -c 'import services.{'ops.entrypoints' if name == 'watchdog' else name}'")
    assert out.stdout.split()[0] == "10001"


def test_finetune_cli_takes_the_pipelines_options(built_images) -> None:
    out = run_in("finetune", "loopline", "finetune", "run", "--help")
    assert "--learning-rate" in out.stdout


def test_model_image_installs_a_version_readable_by_uid_10001(built_images, tmp_path) -> None:
    """A tiny style model trained in the finetune-full image (its TensorFlow path: the one thing that
    image adds), packed by `make model-image`, installed by the image's default command as uid
    10001 into an empty volume: the services can read it. One model, not the whole bootstrap:
    the compose stack's registry comes from the test session's tiny models."""
    registry = tmp_path / "registry"
    # as root: the registry writes 0600 files, root-owned here, as a build machine's would be
    podman("run", "--rm", "--network", "none", "--user", "0", "-v", f"{tmp_path}:/data", "-e", "LOOPLINE_DATA_DIR=/data",
           image("finetune-full"), "loopline", "models", "bootstrap", "--tiny", "--only", "style-mosaic", timeout=600)
    assert sorted(p.name for p in registry.iterdir() if not p.name.startswith(".")) == ["style-mosaic"]
    version_dir = registry / "style-mosaic" / "1"
    assert version_dir.is_dir()
    sh(["make", "--no-print-directory", "model-image", "MODEL=style-mosaic", "VERSION=1", f"REGISTRY_DIR={registry}",
        "MODEL_IMAGE_ENGINE=podman", "IMAGE_REGISTRY=loopline-test"], cwd=REPO, timeout=300)
    ref = "loopline-test/model-style-mosaic:1"
    volume = f"loopline-test-model-{tmp_path.name}".lower()
    podman("volume", "create", volume)
    try:
        podman("run", "--rm", "--user", "0", "-v", f"{volume}:/data", "--entrypoint", "sh", ref, "-c",
               "chown 10001:0 /data")
        out = podman("run", "--rm", "--user", "10001", "--read-only", "-v", f"{volume}:/data", ref)
        assert "installed style-mosaic v1" in out.stdout
        check = podman("run", "--rm", "--user", "10001", "--network", "none", "-v", f"{volume}:/data",
                       "-e", "LOOPLINE_DATA_DIR=/data", image("qa"), "python", "-c",
                       "import pathlib; from services.common.registry import Registry; "
                       "r = Registry(pathlib.Path('/data/registry')); fs = [p for p in pathlib.Path('/data/registry/style-mosaic/1').rglob('*') "
                       "if p.is_file()]; [p.read_bytes() for p in fs]; print(len(fs), r.aliases('style-mosaic'))")
        count = int(check.stdout.split()[0])
        assert count >= 3 and "production" in check.stdout
        again = podman("run", "--rm", "--user", "10001", "-v", f"{volume}:/data", ref)
        assert "already present" in again.stdout
    finally:
        podman("volume", "rm", "-f", volume, check=False)
        podman("rmi", "-f", ref, check=False)
