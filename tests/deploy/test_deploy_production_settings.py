"""What the rendered manifests promise at N replicas: memory requests at least the measured peaks,
the watchdog really triggers Jenkins, the watchdog's Jenkins user can build FineTuneModels only,
the cluster chooses the storage class unless told, and a pod has time to finish its requests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_helpers import K8S, REPO, load_docs, of_kind

from services.common.settings import CommonSettings
from services.watchdog.settings import WatchdogSettings

pytestmark = pytest.mark.deploy
DOCS = load_docs(K8S)
# peak RSS measured with backend=auto (docs/performance.md; the comments in roles/app/defaults)
MEASURED_PEAK_BYTES = {"vqa": 4.2e9, "qa": 1.41e9}
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9, "": 1}


def _bytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def _container(name: str, docs: list[dict] = DOCS) -> dict:
    (dep,) = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == name]
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == name)


@pytest.mark.parametrize("service", sorted(MEASURED_PEAK_BYTES))
def test_memory_requests_cover_the_measured_peak(service: str) -> None:
    request = _bytes(_container(service)["resources"]["requests"]["memory"])
    assert request >= MEASURED_PEAK_BYTES[service], \
        f"{service}: requests {request / 2**30:.2f} GiB < measured peak {MEASURED_PEAK_BYTES[service] / 1e9:.1f} GB"


def test_the_watchdog_triggers_jenkins_with_everything_it_needs() -> None:
    container = _container("watchdog")
    (config,) = [c for c in of_kind(DOCS, "ConfigMap") if c["metadata"]["name"] == "loopline-config"
                 and c["metadata"]["namespace"] == "loopline"]
    env = {k: str(v) for k, v in config["data"].items() if k.startswith("LOOPLINE_WATCHDOG_")}
    env.update({e["name"]: e.get("value", "from-a-secret") for e in container["env"]
                if e["name"].startswith("LOOPLINE_WATCHDOG_")})
    assert env.get("LOOPLINE_WATCHDOG_TRIGGER") == "jenkins", "docs/deploy.md says the watchdog starts FineTuneModels"
    settings = WatchdogSettings(**{k.removeprefix("LOOPLINE_WATCHDOG_").lower(): v for k, v in env.items()})
    assert settings.jenkins_url and settings.jenkins_user and settings.jenkins_token


def test_the_watchdog_jenkins_user_may_build_finetunemodels_only() -> None:
    casc = (REPO / "jenkins" / "casc.yaml").read_text(encoding="utf-8")
    assert "projectMatrix:" in casc and "globalMatrix" not in casc
    watchdog_global = re.search(r"name: loopline-watchdog\s+permissions: \[([^\]]*)\]", casc).group(1)  # type: ignore[union-attr]
    assert "Job/Build" not in watchdog_global and "Job/" not in watchdog_global
    jobs = (REPO / "jenkins" / "jobs.groovy").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"pipelineJob\('(\w+)'\)\s*\{(.*?)\n\}", jobs, re.S))
    assert "loopline-watchdog" in blocks["FineTuneModels"] and "hudson.model.Item.Build" in blocks["FineTuneModels"]
    assert "loopline-watchdog" not in blocks["Loopline"], "the production pipeline is not the watchdog's to start"


def test_the_cluster_picks_the_storage_class_unless_told(rendered: dict[str, Path]) -> None:
    prod = load_docs(rendered["production"])
    (es,) = [s for s in of_kind(prod, "StatefulSet") if s["metadata"]["name"] == "elasticsearch"]
    claim = es["spec"]["volumeClaimTemplates"][0]["spec"]
    assert "storageClassName" not in claim, "production: the cluster's default StorageClass"
    (es_mk,) = [s for s in of_kind(DOCS, "StatefulSet") if s["metadata"]["name"] == "elasticsearch"]
    assert es_mk["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "standard", "minikube's class"


def test_pods_drain_before_they_stop() -> None:
    grace = CommonSettings.model_fields["shutdown_grace_s"].default
    for dep in [d for d in of_kind(DOCS, "Deployment") if d["metadata"]["namespace"] == "loopline"]:
        spec = dep["spec"]["template"]["spec"]
        main = spec["containers"][0]
        assert main["lifecycle"]["preStop"], f"{dep['metadata']['name']}: no preStop hook"
        assert grace > 60, "longer than the 60 s backend timeouts"
        assert spec["terminationGracePeriodSeconds"] >= grace + 5 + 10, dep["metadata"]["name"]
