"""Images: hadolint, COPY sources present in the build context, real entry points."""

from __future__ import annotations

import re
import shlex

import pytest
from deploy_helpers import (
    ALL_DOCKERFILES,
    REPO,
    SERVICE_DOCKERFILES,
    dockerfile_instructions,
    dockerignore_excludes,
    run,
    tool,
)

from services.common.settings import CommonSettings
from services.ops.entrypoints import ENTRYPOINTS

pytestmark = pytest.mark.deploy

IGNORE = (REPO / ".dockerignore").read_text().splitlines()


def test_one_dockerfile_per_service() -> None:
    assert {p.stem for p in SERVICE_DOCKERFILES} == set(ENTRYPOINTS)


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile) -> None:
    result = run([tool("hadolint"), "--no-color", str(dockerfile)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    assert run([tool("hadolint"), "--no-color", str(bad)]).returncode != 0


def _copy_sources(args: str) -> list[str]:
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    if words and words[0].startswith("["):  # exec form
        words = [w.strip('[]",') for w in args.strip("[]").split(",")]
    return words[:-1]


@pytest.mark.parametrize("dockerfile", SERVICE_DOCKERFILES + [REPO / "docker" / "filebeat.Dockerfile"],
                         ids=lambda p: p.name)
def test_copy_sources_exist_in_the_build_context(dockerfile) -> None:
    """The context is the repository root filtered by .dockerignore."""
    copies = [args for ins, args in dockerfile_instructions(dockerfile) if ins in ("COPY", "ADD")]
    assert copies
    for args in copies:
        if "--from=" in args:
            continue
        for source in _copy_sources(args):
            path = REPO / source
            assert path.exists(), f"{dockerfile.name}: COPY source {source} does not exist"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            kept = [f for f in files if not dockerignore_excludes(str(f.relative_to(REPO)), IGNORE)]
            assert kept, f"{dockerfile.name}: COPY source {source} is excluded by .dockerignore"


def test_dockerignore_keeps_data_and_secrets_out() -> None:
    for path in (".venv/bin/python", "data/registry/x/1/model.safetensors", ".git/config", "tests/conftest.py",
                 "services/x/__pycache__/a.pyc"):
        assert dockerignore_excludes(path, IGNORE), path
    for path in ("pyproject.toml", "services/common/settings.py", "scripts/deploy_healthcheck.py"):
        assert not dockerignore_excludes(path, IGNORE), path


@pytest.mark.parametrize("dockerfile", SERVICE_DOCKERFILES, ids=lambda p: p.name)
def test_service_image_runs_its_entry_point_as_non_root(dockerfile) -> None:
    service = dockerfile.stem
    ins = dockerfile_instructions(dockerfile)
    cmd = [args for i, args in ins if i in ("CMD", "ENTRYPOINT")]
    assert cmd, "no CMD"
    argv = [w.strip('"') for w in re.findall(r'"[^"]*"', cmd[-1])]
    assert argv[:2] == ["loopline", "serve"] and argv[2] in ENTRYPOINTS, f"CMD {argv} is not `loopline serve <service>`"
    assert argv[2] == service
    users = [args for i, args in ins if i == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) != 0, "last USER must be a numeric non-root uid"
    assert any(i == "HEALTHCHECK" and "loopline-healthcheck" in a and service in a for i, a in ins)
    exposed = {int(a) for i, a in ins if i == "EXPOSE"}
    assert exposed == {CommonSettings().port_of(service)}, "EXPOSE must be the port from settings.py"


@pytest.mark.parametrize("dockerfile", SERVICE_DOCKERFILES, ids=lambda p: p.name)
def test_pinned_base_and_only_the_service_extras(dockerfile) -> None:
    ins = dockerfile_instructions(dockerfile)
    stages = {a.split()[-1] for i, a in ins if i == "FROM" and " AS " in a.upper()}
    bases = [a.split()[0] for i, a in ins if i == "FROM"]
    assert all(re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", b) or b in stages for b in bases), bases
    extras = re.findall(r'lockfile\.py requirements /src/pyproject\.toml ([\w-]+)', " ".join(a for i, a in ins if i == "RUN"))
    expected = {"vqa": ["torch", "openvino"], "qa": ["torch", "openvino"], "finetune": ["torch", "finetune", "finetune-full"]}
    assert extras == expected.get(dockerfile.stem, [dockerfile.stem])
    # torch only as the pinned CPU build
    torch_runs = [a for i, a in ins if i == "RUN" and "torch==" in a]
    assert all('"torch==2.13.0+cpu"' in a for a in torch_runs)
    assert bool(torch_runs) == (dockerfile.stem in ("vqa", "qa", "finetune"))


def test_vqa_and_qa_extras_are_the_torch_extra_so_the_shared_layer_is_right() -> None:
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["vqa"] == extras["qa"] == ["loopline[torch]"]
    assert not any("tensorflow" in d for d in extras["finetune"]), "the finetune image carries one framework"
    assert any(d.startswith("elasticsearch") and "<9" in d for d in extras["events"])


def _prefix(path, upto: str) -> str:
    text = path.read_text()
    start = text.index("FROM python:")
    lines = text[start:text.index(upto, start)].replace(" AS finetune-deps", "").splitlines()
    return "\n".join(line for line in lines if not line.startswith("#"))  # comments make no layer


def test_service_dockerfiles_share_their_leading_lines() -> None:
    """Identical leading instructions are what lets podman/docker reuse the layers across images."""
    venv = "python -m venv /opt/venv\n"
    base = {p.stem: _prefix(p, venv) for p in SERVICE_DOCKERFILES}
    assert len(set(base.values())) == 1, "the base + user + venv lines differ between Dockerfiles"
    torch = {stem: _prefix(REPO / "docker" / f"{stem}.Dockerfile", 'pyproject.toml torch ') for stem in ("vqa", "qa", "finetune")}
    assert len(set(torch.values())) == 1, "the torch lines differ between vqa, qa and finetune"
    openvino = {stem: _prefix(REPO / "docker" / f"{stem}.Dockerfile", 'pyproject.toml openvino ') for stem in ("vqa", "qa")}
    assert len(set(openvino.values())) == 1, "the OpenVINO lines differ between vqa and qa (one shared layer)"


def test_model_image_copies_one_registry_version() -> None:
    ins = dockerfile_instructions(REPO / "docker" / "model.Dockerfile")
    args = {a.split("=")[0] for i, a in ins if i == "ARG"}
    assert {"MODEL", "VERSION"} <= args
    copies = [a for i, a in ins if i == "COPY"]
    # owned by the init container's uid: registry files are 0600
    assert copies == ["--chown=10001:0 . /models/${MODEL}/${VERSION}"]
    users = [a for i, a in ins if i == "USER"]
    assert users and users[-1] != "0"
    # its build context is that one version's directory, not the registry with every other version
    # and the services' .openvino-cache (make model-image)
    dry = run(["make", "-n", "model-image", "MODEL=qa-extractive", "VERSION=1"])
    assert dry.returncode == 0, dry.stderr
    assert "-f docker/model.Dockerfile" in dry.stdout and dry.stdout.rstrip().endswith("data/registry/qa-extractive/1")
