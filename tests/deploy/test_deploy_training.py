"""Fine-tune jobs on the cluster: the fine-tune service (services/finetune/kube.py) can create
Jobs in the training namespace, and the Job it builds finds its claim, its ConfigMap, room
in the quota and a network policy there.

The rendered env of the finetune Deployment is turned into real FinetuneSettings and the Job
is built by the service's own build_job_manifest, so a renamed setting or a changed Job
fails here, not on the cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_helpers import INVENTORIES, load_docs, of_kind, pod_templates, selects

from services.finetune.kube import LABELS, build_job_manifest
from services.finetune.settings import FinetuneSettings

pytestmark = pytest.mark.deploy

DOCS = load_docs()
PREFIX = "LOOPLINE_FINETUNE_"
# what KubernetesRunner calls: create/read status/delete a Job (+ what the brief grants for following pods)
JOB_VERBS = {("batch", "jobs"): {"create", "get", "list", "watch", "delete"}, ("batch", "jobs/status"): {"get"},
             ("", "pods"): {"get", "list"}, ("", "pods/log"): {"get", "list"}}


def _one(docs: list[dict], kind: str, name: str, namespace: str | None = None) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name
             and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}"
    return found[0]


def _finetune(docs: list[dict]) -> dict:
    return _one(docs, "Deployment", "finetune")


def _main_container(deployment: dict) -> dict:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "finetune")


def _env(deployment: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _main_container(deployment).get("env", [])
            if e["name"].startswith(PREFIX) and "value" in e}


def _settings(deployment: dict) -> FinetuneSettings:
    """The settings the fine-tune pod will run with (its literal LOOPLINE_FINETUNE_* env)."""
    return FinetuneSettings(**{name[len(PREFIX):].lower(): value for name, value in _env(deployment).items()})


def _grants(rules: list[dict], group: str, resource: str, verb: str) -> bool:
    def has(values: list[str], value: str) -> bool:
        return value in values or "*" in values
    return any(has(r.get("apiGroups", []), group) and has(r.get("resources", []), resource) and has(r["verbs"], verb)
               for r in rules)


def _rules_bound_to(docs: list[dict], account: str, account_ns: str) -> dict[str, list[dict]]:
    """namespace -> the rules every RoleBinding there grants the ServiceAccount (ClusterRoleBindings: '*')."""
    out: dict[str, list[dict]] = {}
    for binding in of_kind(docs, "RoleBinding") + of_kind(docs, "ClusterRoleBinding"):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account and s.get("namespace") == account_ns
                   for s in binding.get("subjects", [])):
            continue
        ns = binding["metadata"].get("namespace", "*")
        ref = binding["roleRef"]
        role = _one(docs, ref["kind"], ref["name"], ns if ref["kind"] == "Role" else None)
        out.setdefault(ns, []).extend(role["rules"])
    return out


def _job(docs: list[dict]) -> dict:
    return build_job_manifest(_settings(_finetune(docs)), "ft-0123456789ab", "qa-extractive")


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * units.get(unit, 1)


def _inventory_docs(rendered: dict[str, Path], inventory: str) -> list[dict]:
    return load_docs(rendered[inventory])


# -- env and settings ----------------------------------------------------------------------
def test_finetune_env_names_are_finetune_settings_fields() -> None:
    fields = FinetuneSettings.model_fields
    assert {"runner", "kube_namespace", "kube_pvc", "kube_image"} <= set(fields)
    env = _env(_finetune(DOCS))
    for name in ("RUNNER", "KUBE_NAMESPACE", "KUBE_PVC", "KUBE_IMAGE"):
        assert PREFIX + name in env, f"the finetune Deployment must set {PREFIX}{name}"
    unknown = [name for name in env if name[len(PREFIX):].lower() not in fields]
    assert not unknown, f"not FinetuneSettings fields (silently ignored): {unknown}"
    settings = _settings(_finetune(DOCS))          # validates the values too (runner is a Literal)
    assert settings.runner == "kubernetes"


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_inventory_runs_finetune_jobs_on_the_cluster_with_the_deploy_image(
        rendered: dict[str, Path], inventory: str) -> None:
    docs = _inventory_docs(rendered, inventory)
    finetune = _finetune(docs)
    settings = _settings(finetune)
    assert settings.runner == "kubernetes"
    # the same build and tag as the service, in its full variant (TensorFlow for style training)
    service_image = _main_container(finetune)["image"]
    assert settings.kube_image == service_image.replace("/finetune:", "/finetune-full:"), \
        "Jobs must run the image this deploy rolled out (finetune-full of the same tag)"
    assert settings.kube_image_pull_policy == _main_container(finetune)["imagePullPolicy"]


# -- API access ----------------------------------------------------------------------------
def test_only_the_finetune_pod_mounts_an_api_token() -> None:
    finetune = _finetune(DOCS)
    spec = finetune["spec"]["template"]["spec"]
    ns = finetune["metadata"]["namespace"]
    assert spec.get("automountServiceAccountToken") is True
    account = _one(DOCS, "ServiceAccount", spec["serviceAccountName"], ns)
    assert account.get("automountServiceAccountToken", True) is True
    for w in pod_templates(DOCS):
        if (w["kind"], w["name"]) != ("Deployment", "finetune"):
            assert w["template"]["spec"].get("automountServiceAccountToken") is False, f"{w['name']} mounts a token"


def test_finetune_service_account_may_manage_jobs_in_the_training_namespace_only() -> None:
    finetune = _finetune(DOCS)
    settings = _settings(finetune)
    bound = _rules_bound_to(DOCS, finetune["spec"]["template"]["spec"]["serviceAccountName"],
                            finetune["metadata"]["namespace"])
    assert set(bound) == {settings.kube_namespace}, f"bound in {sorted(bound)}: only the training namespace"
    assert settings.kube_namespace in {d["metadata"]["name"] for d in of_kind(DOCS, "Namespace")}
    rules = bound[settings.kube_namespace]
    for (group, resource), verbs in JOB_VERBS.items():
        for verb in verbs:
            assert _grants(rules, group, resource, verb), f"cannot {verb} {resource}"
    assert not _grants(rules, "", "secrets", "get") and not _grants(rules, "", "pods/exec", "create")


def test_rbac_check_catches_a_missing_verb() -> None:
    rules = [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]}]
    assert _grants(rules, "batch", "jobs", "create") and not _grants(rules, "batch", "jobs", "delete")
    assert _grants([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}], "batch", "jobs", "delete")


def test_finetune_pod_can_reach_the_api_server() -> None:
    """If egress is ever restricted in the serving namespace, the API server (443/6443) must stay open."""
    finetune = _finetune(DOCS)
    ns, labels = finetune["metadata"]["namespace"], finetune["spec"]["template"]["metadata"]["labels"]
    egress = [p for p in of_kind(DOCS, "NetworkPolicy") if p["metadata"]["namespace"] == ns
              and "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)]
    if not egress:
        return
    open_ports = {port.get("port") for p in egress for rule in p["spec"].get("egress", [])
                  for port in rule.get("ports", [{"port": None}])}
    assert open_ports & {443, 6443, None}, "the fine-tune pod must reach the Kubernetes API server"


# -- the Job's namespace: claim, ConfigMap, quota, network -----------------------------------
def test_training_namespace_has_the_claim_the_env_names() -> None:
    settings = _settings(_finetune(DOCS))
    claim = _one(DOCS, "PersistentVolumeClaim", settings.kube_pvc, settings.kube_namespace)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_training_claim_is_bound_to_the_serving_claims_storage(rendered: dict[str, Path], inventory: str) -> None:
    """Two claims cannot share one PV: each is pre-bound to its own PV on the same storage."""
    docs = _inventory_docs(rendered, inventory)
    finetune = _finetune(docs)
    settings = _settings(finetune)
    serving_ns = finetune["metadata"]["namespace"]
    serving_claim_name = next(v["persistentVolumeClaim"]["claimName"] for v in finetune["spec"]["template"]["spec"]["volumes"]
                              if v["name"] == "data")
    assert settings.kube_pvc == serving_claim_name
    assert settings.kube_data_mount == "/data"

    def bound_volume(namespace: str) -> dict:
        claim = _one(docs, "PersistentVolumeClaim", settings.kube_pvc, namespace)
        assert claim["spec"]["storageClassName"] == "", "a static claim must not trigger a provisioner"
        volume = _one(docs, "PersistentVolume", claim["spec"]["volumeName"])
        assert volume["spec"]["claimRef"] == {"namespace": namespace, "name": settings.kube_pvc}
        assert volume["spec"]["accessModes"] == ["ReadWriteMany"]
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain", "deleting a claim must keep the data"
        assert volume["spec"]["storageClassName"] == ""
        return volume

    def source(volume: dict) -> dict:
        skip = {"capacity", "accessModes", "persistentVolumeReclaimPolicy", "storageClassName", "claimRef",
                "volumeMode", "mountOptions", "nodeAffinity"}
        return {k: v for k, v in volume["spec"].items() if k not in skip}

    training = source(bound_volume(settings.kube_namespace))
    serving_claim = _one(docs, "PersistentVolumeClaim", settings.kube_pvc, serving_ns)
    if serving_claim["spec"].get("volumeName"):
        assert source(bound_volume(serving_ns)) == training, "the two PVs must point at the same storage"
    else:
        # provisioned by minikube's storage-provisioner into /tmp/hostpath-provisioner/<namespace>/<claim>
        assert serving_claim["spec"]["storageClassName"] == "standard", "only minikube's provisioner is supported"
        assert training == {"hostPath": {"path": f"/tmp/hostpath-provisioner/{serving_ns}/{settings.kube_pvc}",
                                         "type": "Directory"}}


def test_the_job_the_service_builds_finds_its_claim_and_config() -> None:
    job = _job(DOCS)
    ns, spec = job["metadata"]["namespace"], job["spec"]["template"]["spec"]
    names = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in DOCS}
    assert ("Namespace", None, ns) in names
    for vol in spec["volumes"]:
        if "persistentVolumeClaim" in vol:
            assert ("PersistentVolumeClaim", ns, vol["persistentVolumeClaim"]["claimName"]) in names
    for c in spec["containers"]:
        for ref in c.get("envFrom", []):
            assert ("ConfigMap", ns, ref["configMapRef"]["name"]) in names, "the Job's envFrom ConfigMap is missing"
    assert spec.get("serviceAccountName") is None and spec["automountServiceAccountToken"] is False


def test_the_job_fits_the_training_quota() -> None:
    job = _job(DOCS)
    quotas = [q for q in of_kind(DOCS, "ResourceQuota") if q["metadata"]["namespace"] == job["metadata"]["namespace"]]
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    for quota in quotas:
        hard = quota["spec"]["hard"]
        for kind in ("requests", "limits"):
            for res in ("cpu", "memory"):
                if f"{kind}.{res}" in hard:
                    assert res in resources[kind], f"the quota needs {kind}.{res} on every pod"
                    assert _quantity(resources[kind][res]) <= _quantity(hard[f"{kind}.{res}"])


def test_job_pods_take_no_connections_and_open_none() -> None:
    job = _job(DOCS)
    ns, labels = job["metadata"]["namespace"], job["spec"]["template"]["metadata"]["labels"]
    assert selects(LABELS, labels)
    policies = [p for p in of_kind(DOCS, "NetworkPolicy") if p["metadata"]["namespace"] == ns
                and selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)]
    ingress = [p for p in policies if "Ingress" in p["spec"]["policyTypes"]]
    egress = [p for p in policies if "Egress" in p["spec"]["policyTypes"]]
    assert ingress and not any(p["spec"].get("ingress") for p in ingress), "nothing may connect to a training pod"
    assert egress and not any(p["spec"].get("egress") for p in egress), "a training pod needs no network"
    # and the isolation policy selects only the Job pods, never the CI builds sharing the namespace
    for p in egress:
        selector = p["spec"]["podSelector"].get("matchLabels", {})
        assert selector and selects(selector, LABELS)

