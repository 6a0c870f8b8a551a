"""Policies every committed manifest must meet (k8s/ equals render.yml's output)."""

from __future__ import annotations

import re

import pytest
from deploy_helpers import K8S, REPO, load_docs, of_kind, pod_templates, selects

from services.common.settings import CommonSettings
from services.common.tasks import TASKS
from services.ops.entrypoints import ENTRYPOINTS

pytestmark = pytest.mark.deploy

DOCS = load_docs()
WORKLOADS = pod_templates(DOCS)
DEPLOYMENTS = of_kind(DOCS, "Deployment")
INFERENCE = set(TASKS)


def _containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _pods(namespace: str) -> list[dict]:
    return [w for w in WORKLOADS if w["namespace"] == namespace]


def test_manifests_are_present() -> None:
    assert {d["metadata"]["name"] for d in DEPLOYMENTS} >= set(ENTRYPOINTS) | {"kibana"}
    assert of_kind(DOCS, "StatefulSet") and of_kind(DOCS, "Ingress") and of_kind(DOCS, "PersistentVolumeClaim")


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["metadata"]["name"])
def test_deployment_has_probes_resources_and_a_locked_down_security_context(deployment: dict) -> None:
    template = deployment["spec"]["template"]
    pod_sc = template["spec"].get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True
    assert pod_sc.get("runAsUser", 0) != 0
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    for c in template["spec"]["containers"]:
        assert c.get("livenessProbe") and c.get("readinessProbe"), f"{c['name']}: probes"
    for c in _containers(template):
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res.get(kind, {})), f"{c['name']}: resources.{kind}"
        sc = c.get("securityContext", {})
        assert sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: readOnlyRootFilesystem"
        assert sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: allowPrivilegeEscalation"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{c['name']}: capabilities"
        assert sc.get("runAsUser", pod_sc["runAsUser"]) != 0


@pytest.mark.parametrize("workload", [w for w in WORKLOADS if w["kind"] != "Deployment"], ids=lambda w: w["name"])
def test_other_workloads_run_as_non_root(workload: dict) -> None:
    spec = workload["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    for c in spec["containers"]:
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(c["resources"]["limits"])


@pytest.mark.parametrize("service", sorted(ENTRYPOINTS))
def test_service_runs_its_entry_point_on_the_settings_port(service: str) -> None:
    deployment = next(d for d in DEPLOYMENTS if d["metadata"]["name"] == service)
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    assert main["command"] == ["loopline", "serve", service]
    port = CommonSettings().port_of(service)
    assert main["ports"][0]["containerPort"] == port
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in main["env"]}
    assert env["LOOPLINE_LOG_FILE"]["value"] == f"/var/log/loopline/{service}.json"
    assert "secretKeyRef" in env["LOOPLINE_ADMIN_TOKEN"]["valueFrom"]
    mounts = {m["mountPath"] for m in main["volumeMounts"]}
    assert {"/data", "/tmp", "/var/log/loopline"} <= mounts
    sidecars = [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"][1:]]
    assert sidecars == ["filebeat"]


def test_configmap_urls_match_the_settings_ports() -> None:
    config = next(d for d in of_kind(DOCS, "ConfigMap") if d["metadata"]["name"] == "loopline-config")["data"]
    assert config["LOOPLINE_HOST"] == "0.0.0.0" and config["LOOPLINE_DATA_DIR"] == "/data"
    settings = CommonSettings()
    for backend in ("vqa", "qa", "style", "finetune"):
        assert re.fullmatch(rf"http://{backend}\.[a-z-]+\.svc\.cluster\.local:{settings.port_of(backend)}",
                            config[f"LOOPLINE_{backend.upper()}_URL"])
    # one event store shared by gateway, fine-tune and watchdog
    assert config["LOOPLINE_EVENTS_STORE"] == "elasticsearch"
    assert config["LOOPLINE_EVENTS_ELASTICSEARCH_URL"].startswith("http://elasticsearch.")


def test_every_hpa_targets_an_existing_deployment() -> None:
    hpas = of_kind(DOCS, "HorizontalPodAutoscaler")
    assert {h["metadata"]["name"] for h in hpas} >= INFERENCE | {"gateway"}
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        target = [d for d in DEPLOYMENTS if d["metadata"]["name"] == ref["name"]
                  and d["metadata"]["namespace"] == hpa["metadata"]["namespace"]]
        assert ref["kind"] == "Deployment" and target, f"HPA {hpa['metadata']['name']} targets nothing"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert "replicas" not in target[0]["spec"], "a fixed replica count fights the HPA on every apply"
        for c in target[0]["spec"]["template"]["spec"]["containers"]:
            assert "cpu" in c["resources"]["requests"], "CPU utilisation needs CPU requests"


def test_every_service_selects_existing_pods_on_a_declared_port() -> None:
    for svc in of_kind(DOCS, "Service"):
        ns, selector = svc["metadata"]["namespace"], svc["spec"]["selector"]
        pods = [w for w in _pods(ns) if selects(selector, w["template"]["metadata"]["labels"])]
        assert pods, f"Service {ns}/{svc['metadata']['name']} selects no pods"
        names = {p["name"] for w in pods for c in w["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names, f"{svc['metadata']['name']}: no container port {port['targetPort']}"


def test_every_pdb_selects_existing_pods() -> None:
    for pdb in of_kind(DOCS, "PodDisruptionBudget"):
        ns, selector = pdb["metadata"]["namespace"], pdb["spec"]["selector"]["matchLabels"]
        assert any(selects(selector, w["template"]["metadata"]["labels"]) for w in _pods(ns))


def test_ingress_routes_to_existing_services() -> None:
    services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in of_kind(DOCS, "Service")}
    for ing in of_kind(DOCS, "Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = services[(ing["metadata"]["namespace"], backend["name"])]
                assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}


def test_referenced_configmaps_and_claims_exist() -> None:
    names = {(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]) for d in DOCS if "namespace" in d["metadata"]}
    for w in WORKLOADS:
        for vol in w["template"]["spec"].get("volumes", []):
            if "configMap" in vol:
                assert ("ConfigMap", w["namespace"], vol["configMap"]["name"]) in names
            if "persistentVolumeClaim" in vol:
                assert ("PersistentVolumeClaim", w["namespace"], vol["persistentVolumeClaim"]["claimName"]) in names
        for c in _containers(w["template"]):
            for ref in c.get("envFrom", []):
                assert ("ConfigMap", w["namespace"], ref["configMapRef"]["name"]) in names


def test_registry_volume_is_read_write_many() -> None:
    pvc = next(d for d in of_kind(DOCS, "PersistentVolumeClaim") if d["metadata"]["name"] == "loopline-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_secrets_are_referenced_never_rendered_and_documented() -> None:
    assert not of_kind(DOCS, "Secret"), "Secrets must not be committed"
    guide = (REPO / "docs" / "deploy.md").read_text()
    refs = set()
    for w in WORKLOADS:
        for c in _containers(w["template"]):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((w["namespace"], ref["name"], ref["key"]))
    assert refs
    for ns, name, key in refs:
        assert name in guide and key in guide, f"docs/deploy.md must say how to create {ns}/{name} key {key}"


def _policies_for(namespace: str, labels: dict) -> list[dict]:
    return [p for p in of_kind(DOCS, "NetworkPolicy") if p["metadata"]["namespace"] == namespace
            and "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)]


def _admitted(peer: dict, namespace: str) -> list[dict]:
    """Workloads a NetworkPolicy peer admits (a namespaceSelector or ipBlock admits outsiders: None)."""
    if "ipBlock" in peer or "namespaceSelector" in peer:
        return [None]
    selector = peer.get("podSelector", {}).get("matchLabels", {})
    return [w for w in _pods(namespace) if selects(selector, w["template"]["metadata"]["labels"])]


@pytest.mark.parametrize("service", sorted(INFERENCE))
def test_only_the_gateway_reaches_the_inference_services(service: str) -> None:
    deployment = next(d for d in DEPLOYMENTS if d["metadata"]["name"] == service)
    ns = deployment["metadata"]["namespace"]
    policies = _policies_for(ns, deployment["spec"]["template"]["metadata"]["labels"])
    assert any(not p["spec"].get("ingress") for p in policies), "a default-deny ingress policy must select it"
    admitted = []
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: a rule without `from` admits everyone"
            for peer in rule["from"]:
                admitted += _admitted(peer, ns)
    names = {w["name"] if w else "<outside the namespace>" for w in admitted}
    assert names == {"gateway"}, f"{service} admits {names}"


def test_network_policy_check_catches_an_open_rule() -> None:
    """The check above must fail on a policy that lets any namespace in."""
    policy = {"kind": "NetworkPolicy", "metadata": {"namespace": "loopline"},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": {}}]}]}}
    assert _admitted(policy["spec"]["ingress"][0]["from"][0], "loopline") == [None]


def test_every_namespace_used_is_declared() -> None:
    declared = {d["metadata"]["name"] for d in of_kind(DOCS, "Namespace")}
    used = {d["metadata"]["namespace"] for d in DOCS if d["kind"] != "Namespace" and "namespace" in d["metadata"]}
    assert used <= declared
    assert len(declared) >= 3


def test_k8s_folder_has_only_rendered_yaml() -> None:
    assert all(p.suffix == ".yaml" for p in K8S.rglob("*") if p.is_file())


def test_the_finetune_jenkins_agent_may_reach_the_finetune_service() -> None:
    """FineTuneModels runs `make finetune-job` in an agent pod of the Jenkins namespace (the cloud
    in jenkins/casc.yaml; not the training namespace, where the CI has no pods/exec), which
    follows the job through the fine-tune API: the serving namespace's deny-all must admit it."""
    import yaml

    agent = yaml.safe_load((REPO / "jenkins" / "agent-pod.yaml").read_text(encoding="utf-8"))
    agent_name = agent["metadata"]["labels"]["app.kubernetes.io/name"]
    casc = yaml.safe_load((REPO / "jenkins" / "casc.yaml").read_text(encoding="utf-8"))
    agent_ns = casc["jenkins"]["clouds"][0]["kubernetes"]["namespace"]
    (policy,) = [p for p in of_kind(DOCS, "NetworkPolicy") if p["metadata"]["name"] == "finetune-ingress"]
    admitted = [src for rule in policy["spec"]["ingress"] for src in rule["from"]
                if src.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                == agent_ns]
    assert admitted and admitted[0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == agent_name
    assert all("podSelector" in src for src in admitted), "only the agent, not every pod of the namespace"
