"""Build paths: every image a manifest, a training Job or compose references is one that each
build path produces (docker/podman on an agent with a daemon, Kaniko Jobs in the cluster), from
a Dockerfile stage that exists. The Kaniko path once built only each Dockerfile's last stage, so
``finetune-full`` (the training Jobs' image) never existed and every fine-tune sat in
ImagePullBackOff."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from deploy_helpers import DOCKER, K8S, REPO, load_docs, pod_templates, run, tool

pytestmark = pytest.mark.deploy
SERVICES = ["gateway", "vqa", "qa", "style", "finetune", "watchdog"]
REGISTRY, TAG = "registry.example.com/loopline", "abc123"
# images Loopline does not build: pulled from their publishers
UPSTREAM = ("docker.elastic.co/", "gcr.io/kaniko-project/")


def _stages(dockerfile: Path) -> list[str]:
    return re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile.read_text(encoding="utf-8"), re.M | re.I)


def _build(builder: str, tmp_path: Path) -> str:
    env = {"IMAGE_BUILDER": builder, "DRY_RUN": "1", "IMAGE_REGISTRY": REGISTRY, "IMAGE_TAG": TAG,
           "GIT_URL": "https://git.example.com/mlops/loopline.git", "GIT_COMMIT": "0" * 40,
           "KANIKO_JOB_DIR": str(tmp_path)}
    done = run(["bash", "scripts/deploy_images.sh", "build", *SERVICES], env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def kaniko_jobs(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("kaniko")
    _build("kaniko", out)
    return [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.job.yaml"))]


def _kaniko_images(jobs: list[dict]) -> dict[str, dict[str, str]]:
    images = {}
    for job in jobs:
        (container,) = job["spec"]["template"]["spec"]["containers"]
        args = dict(a.lstrip("-").split("=", 1) for a in container["args"] if "=" in a)
        images[args["destination"]] = args
    return images


def _docker_images(tmp_path: Path) -> set[str]:
    return set(re.findall(r"^\+ docker build .* -t (\S+) \.$", _build("docker", tmp_path), re.M))


def _referenced(root: Path) -> set[str]:
    """Every image the rendered manifests run, plus the image the fine-tune service gives its Jobs."""
    docs = load_docs(root)
    refs = set()
    for w in pod_templates(docs):
        spec = w["template"]["spec"]
        refs |= {c["image"] for c in spec["containers"] + spec.get("initContainers", [])}
        for c in spec["containers"]:
            refs |= {e["value"] for e in c.get("env", []) if e["name"] == "LOOPLINE_FINETUNE_KUBE_IMAGE"}
    for d in docs:
        if d["kind"] == "ConfigMap":
            refs |= {v for k, v in (d.get("data") or {}).items() if k == "LOOPLINE_FINETUNE_KUBE_IMAGE"}
    return refs


def _retag(image: str) -> str:
    """The rendered default environment uses image_registry=loopline, image_tag=dev: map it onto
    the registry and tag the build here used."""
    name, _, _tag = image.rpartition(":")
    return f"{REGISTRY}/{name.rsplit('/', 1)[-1]}:{TAG}"


def test_kaniko_jobs_build_existing_stages_with_git_credentials(kaniko_jobs: list[dict]) -> None:
    images = _kaniko_images(kaniko_jobs)
    assert f"{REGISTRY}/finetune-full:{TAG}" in images, "the training Jobs' image must be built by Kaniko too"
    for destination, args in images.items():
        dockerfile = REPO / args["dockerfile"]
        assert dockerfile.is_file(), destination
        if "target" in args:
            assert args["target"] in _stages(dockerfile), f"{destination}: no stage {args['target']} in {dockerfile.name}"
    full = images[f"{REGISTRY}/finetune-full:{TAG}"]
    assert full["target"] == "finetune-full" and full["dockerfile"] == "docker/finetune.Dockerfile"
    assert images[f"{REGISTRY}/finetune:{TAG}"].get("target") == "finetune", "the lean service image, not the full one"
    for job in kaniko_jobs:
        env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        assert {"GIT_USERNAME", "GIT_PASSWORD"} <= set(env), "Kaniko clones the repository: it needs git credentials"
        assert "${" not in yaml.safe_dump(job), "every placeholder filled"


def test_kaniko_jobs_pass_strict_validation(kaniko_jobs: list[dict], tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(kaniko_jobs))
    done = run([tool("kubernetes-validate"), "--strict", "--quiet", str(path)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_referenced_image_is_produced_by_every_build_path(kaniko_jobs: list[dict], tmp_path: Path,
                                                                 rendered: dict[str, Path]) -> None:
    kaniko = set(_kaniko_images(kaniko_jobs))
    docker = _docker_images(tmp_path)
    refs = _referenced(K8S) | _referenced(rendered["production"])
    ours = {_retag(r) for r in refs if not r.startswith(UPSTREAM)}
    assert f"{REGISTRY}/finetune-full:{TAG}" in ours, "the check must see the training Jobs' image"
    assert ours - kaniko == set(), f"referenced but never built by Kaniko: {sorted(ours - kaniko)}"
    assert ours - docker == set(), f"referenced but never built by docker/podman: {sorted(ours - docker)}"
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    compose_images = {_retag(s["image"].replace("${LOOPLINE_IMAGE_TAG:-dev}", "dev"))
                      for s in compose["services"].values() if "image" in s and not s["image"].startswith(UPSTREAM)}
    assert compose_images - docker == set(), f"compose runs images `make images` never builds: {compose_images - docker}"


def test_the_check_catches_an_image_no_build_path_produces(kaniko_jobs: list[dict]) -> None:
    kaniko = set(_kaniko_images(kaniko_jobs))
    assert _retag("loopline/finetune-gpu:dev") not in kaniko
    assert {s for s in _stages(DOCKER / "finetune.Dockerfile")} >= {"finetune", "finetune-full"}
