"""Ansible: playbooks parse, render.yml reproduces the committed k8s/, every document is valid.

The `rendered` fixture (every inventory rendered once) is in conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import ANSIBLE, INVENTORIES, K8S, ansible_env, run, tool

pytestmark = pytest.mark.deploy

PLAYBOOKS = sorted(p for p in ANSIBLE.glob("*.yml"))


def test_inventories_for_minikube_and_production() -> None:
    assert {"minikube", "production"} <= set(INVENTORIES)


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_playbook_syntax(playbook: Path) -> None:
    result = run([tool("ansible-playbook"), "--syntax-check", "-i",
                  str(ANSIBLE / "inventories" / "minikube" / "hosts.yml"), str(playbook)], env=ansible_env())
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:] + (
        "\n(deploy.yml needs the kubernetes.core collection: the ansible package in the dev extra, make install)")


def test_deploy_applies_with_kubernetes_core() -> None:
    text = (ANSIBLE / "deploy.yml").read_text()
    assert "kubernetes.core.k8s:" in text


def test_committed_k8s_matches_the_templates(rendered: dict[str, Path]) -> None:
    fresh = rendered["minikube"]
    committed = {p.relative_to(K8S): p.read_text() for p in K8S.rglob("*.yaml")}
    now = {p.relative_to(fresh): p.read_text() for p in fresh.rglob("*.yaml")}
    assert sorted(map(str, committed)) == sorted(map(str, now)), "k8s/ files differ from render.yml output: run `make render`"
    drifted = [str(path) for path in now if committed[path] != now[path]]
    assert not drifted, f"k8s/ drifted from ansible/ templates in {drifted}: run `make render` and commit"


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_rendered_document_passes_strict_validation(rendered: dict[str, Path], inventory: str) -> None:
    files = sorted(str(p) for p in rendered[inventory].rglob("*.yaml"))
    assert files
    result = run([tool("kubernetes-validate"), "--strict", "--quiet", *files])
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((K8S / "app" / "storage.yaml").read_text().replace("accessModes:", "accessMode:"))
    assert run([tool("kubernetes-validate"), "--strict", "--quiet", str(bad)]).returncode != 0


def test_production_differs_where_it_should(rendered: dict[str, Path]) -> None:
    prod = (rendered["production"] / "app" / "service-gateway.yaml").read_text()
    assert "image: registry.example.com/loopline/gateway:dev" in prod
    assert "minReplicas: 3" in prod
