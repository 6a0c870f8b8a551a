"""Pipelines with hostile input, and deploy checks that can fail.

- Jenkins/make parameters with quotes, ``$(...)``, backticks and newlines reach the command as
  data (the recipe really runs, with a stand-in ``loopline`` that records its argv).
- An empty or unknown ``K8S_ENV`` fails; Ansible refuses an inventory it cannot parse.
- The rollout check fails on crash-looping new pods while ``Available`` is still True.
- The smoke test's scheme matches the Ingress it calls (https only with ``tls:``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from deploy_helpers import ANSIBLE, JENKINSFILES, REPO, ansible_env, load_docs, of_kind, run, tool

sys.path.insert(0, str(REPO / "scripts"))
from deploy_rollout import rollout_state  # noqa: E402

pytestmark = pytest.mark.deploy
HOSTILE = {
    "MODEL": 'qa-extractive"; touch {canary}; echo "',
    "DATASET": "samples/$(touch {canary}).json",
    "EPOCHS": "`touch {canary}`1",
    "BATCH_SIZE": "8$$(touch {canary})",
    "LEARNING_RATE": "0.1' ; touch {canary} ; '",
    "REASON": "watchdog: confidence 0.41 < 0.75\n$(touch {canary}) ${{HOME}} 'quoted' \"double\"",
}


def _fake_loopline(tmp_path: Path) -> Path:
    fake = tmp_path / "loopline"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    return fake


def test_hostile_jenkins_parameters_reach_the_command_as_data(tmp_path: Path) -> None:
    """FineTuneModels runs `make finetune-job` with the parameters in its environment."""
    canary = tmp_path / "executed"
    values = {k: v.format(canary=canary) for k, v in HOSTILE.items()}
    done = run(["make", "-s", "-o", "models", "finetune-job", f"LOOPLINE={_fake_loopline(tmp_path)}"], env=values)
    assert done.returncode == 0, done.stderr
    argv = json.loads(done.stdout.strip().splitlines()[-1])
    assert not canary.exists(), "a parameter was executed"
    assert argv == ["finetune", "run", values["MODEL"], "--dataset", values["DATASET"], "--epochs", values["EPOCHS"],
                    "--batch-size", values["BATCH_SIZE"], "--learning-rate", values["LEARNING_RATE"],
                    "--reason", values["REASON"], "--wait"]


def test_the_feedback_dataset_switch_survives_hostile_values(tmp_path: Path) -> None:
    fake = _fake_loopline(tmp_path)
    done = run(["make", "-s", "-o", "models", "finetune-job", f"LOOPLINE={fake}"], env={"DATASET": "feedback"})
    argv = json.loads(done.stdout.strip().splitlines()[-1])
    assert "--feedback" in argv and "--dataset" not in argv
    canary = tmp_path / "executed"
    done = run(["make", "-s", "-o", "models", "finetune-job", f"LOOPLINE={fake}"],
               env={"DATASET": f"feedback $(shell touch {canary})"})
    assert done.returncode == 0 and not canary.exists()


def test_jenkinsfiles_pass_parameters_only_through_the_environment() -> None:
    """No `sh` step interpolates a parameter (Groovy "${params.X}") or assigns it as a make variable."""
    params: set[str] = set()
    for path in JENKINSFILES:
        text = path.read_text(encoding="utf-8")
        params |= set(re.findall(r"(?:string|choice|booleanParam)\(name: '(\w+)'", text))
    assert {"MODEL", "DATASET", "REASON", "K8S_ENV"} <= params
    for path in JENKINSFILES:
        for step in re.findall(r"\bsh\s*\(?\s*(['\"]{1,3})(.*?)\1", path.read_text(encoding="utf-8"), re.S):
            quote, body = step
            assert quote.startswith("'"), f"{path.name}: a double-quoted sh step is Groovy-interpolated: {body}"
            for name in params:
                assert f"{name}=" not in body and f"${name}" not in body, f"{path.name}: {name} spliced into {body!r}"


@pytest.mark.parametrize("env", ["", "prod", "../minikube"])
def test_an_empty_or_unknown_environment_fails(env: str) -> None:
    done = run(["make", "-s", "deploy", "DRY_RUN=1"], env={"K8S_ENV": env})
    assert done.returncode != 0 and "is not an environment" in done.stderr, done.stdout + done.stderr


def test_ansible_refuses_an_inventory_it_cannot_parse(tmp_path: Path) -> None:
    done = run([tool("ansible-playbook"), "-i", str(ANSIBLE / "inventories" / "nope" / "hosts.yml"),
                str(ANSIBLE / "render.yml"), "-e", f"render_dir={tmp_path}"], env=ansible_env())
    assert done.returncode != 0, "an unknown inventory must not run against no hosts and exit 0"
    assert not any(tmp_path.iterdir())


def _deployment(generation: int = 2, **status: int) -> dict:
    return {"metadata": {"name": "gateway", "generation": generation}, "spec": {"replicas": 2},
            "status": {"observedGeneration": generation, "conditions": [
                {"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}], **status}}


def _pod(reason: str | None = None, restarts: int = 0, ready: bool = False) -> dict:
    state = {"waiting": {"reason": reason}} if reason else {"running": {}}
    return {"metadata": {"name": "gateway-new-1"},
            "status": {"containerStatuses": [{"name": "gateway", "state": state, "restartCount": restarts,
                                              "ready": ready}]}}


def test_rollout_check_fails_on_crash_looping_new_pods_while_available_is_true() -> None:
    rolling = _deployment(replicas=3, updatedReplicas=1, availableReplicas=2)  # the old pods still serve
    assert rollout_state(rolling, [_pod("CrashLoopBackOff", restarts=4)])[0] == "failed"
    assert rollout_state(rolling, [_pod(restarts=5)])[0] == "failed"
    assert rollout_state(rolling, [_pod("ImagePullBackOff")])[0] == "failed"
    assert rollout_state(rolling, [_pod("ContainerCreating")])[0] == "waiting"
    deadline = _deployment(replicas=2, updatedReplicas=2, availableReplicas=2)
    deadline["status"]["conditions"].append({"type": "Progressing", "reason": "ProgressDeadlineExceeded"})
    assert rollout_state(deadline, [])[0] == "failed"
    assert rollout_state(_deployment(replicas=3, updatedReplicas=2, availableReplicas=2), [])[0] == "waiting"
    assert rollout_state(_deployment(replicas=2, updatedReplicas=2, availableReplicas=2, observedGeneration=1),
                         [])[0] == "waiting"
    assert rollout_state(_deployment(replicas=2, updatedReplicas=2, availableReplicas=2),
                         [_pod(ready=True), _pod(ready=True)])[0] == "done"


def test_deploy_waits_with_the_rollout_check_not_the_available_condition() -> None:
    text = (ANSIBLE / "deploy.yml").read_text(encoding="utf-8")
    assert "deploy_rollout.py" in text and "type: Available" not in text


def test_the_smoke_test_scheme_matches_the_ingress(rendered: dict[str, Path]) -> None:
    """The main pipeline smoke-tests GATEWAY_URL after deploying K8S_ENV (production by default)."""
    jenkinsfile = (REPO / "Jenkinsfile").read_text(encoding="utf-8")
    url = urlparse(re.search(r"GATEWAY_URL = '([^']+)'", jenkinsfile).group(1))  # type: ignore[union-attr]
    (ingress,) = [i for i in of_kind(load_docs(rendered["production"]), "Ingress") if i["metadata"]["name"] == "gateway"]
    hosts = {r["host"] for r in ingress["spec"]["rules"]}
    tls_hosts = {h for t in ingress["spec"].get("tls", []) for h in t.get("hosts", [])}
    assert url.hostname in hosts, f"the smoke test calls {url.hostname}, the Ingress serves {hosts}"
    assert (url.scheme == "https") == (url.hostname in tls_hosts), \
        f"smoke test uses {url.scheme} but the Ingress has tls for {tls_hosts or 'no host'}"
    minikube = [i for i in of_kind(load_docs(rendered["minikube"]), "Ingress") if i["metadata"]["name"] == "gateway"]
    assert not minikube[0]["spec"].get("tls"), "minikube serves plain http (make smoke's default URL)"
    assert yaml.safe_dump(ingress)


def test_finetunemodels_gates_the_version_it_produced_not_local_models() -> None:
    """`make eval-gate` on the agent scores the agent's tiny local registry; the job's own gate
    (exit 3 from `finetune run --wait`) is the one that judges the new version."""
    text = (REPO / "jenkins" / "FineTuneModels.Jenkinsfile").read_text(encoding="utf-8")
    assert "sh 'make eval-gate" not in text
    cli = (REPO / "services" / "finetune" / "cli.py").read_text(encoding="utf-8")
    assert "exit 0 passed, 3 refused" in cli and "--wait" in (REPO / "mk" / "delivery.mk").read_text(encoding="utf-8")
