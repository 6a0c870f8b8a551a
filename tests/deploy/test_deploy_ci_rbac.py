"""The CI identity (Jenkins and its agents) may not exec into, or start bare pods in, Loopline's
namespaces: the fine-tune Jobs in loopline-training mount the production registry read-write
(issue 25, defect 15). The Kubernetes plugin's exec stays in the Jenkins namespace."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
JENKINS_NS = "jenkins"


def docs(*paths: Path) -> list[dict]:
    return [d for p in paths for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]


def ci_identities() -> set[tuple[str, str]]:
    """Service accounts Jenkins acts as: the controller's, the agent pods', the Kaniko Jobs'."""
    agent = yaml.safe_load((REPO / "jenkins" / "agent-pod.yaml").read_text(encoding="utf-8"))
    kaniko = yaml.safe_load((REPO / "jenkins" / "kaniko-build-job.yaml").read_text(encoding="utf-8"))
    return {(JENKINS_NS, "jenkins"), (JENKINS_NS, agent["spec"]["serviceAccountName"]),
            (kaniko["metadata"].get("namespace", "loopline-training"), kaniko["spec"]["template"]["spec"]["serviceAccountName"])}


def grants(rule: dict, resource: str, verb: str) -> bool:
    return bool({resource, "*"} & set(rule.get("resources", []))) and bool({verb, "*"} & set(rule.get("verbs", []))) \
        and bool({"", "*"} & set(rule.get("apiGroups", [])))


def ci_rules_in_loopline_namespaces() -> list[tuple[str, dict]]:
    rendered = docs(*sorted((REPO / "k8s").rglob("*.yaml")))
    namespaces = {d["metadata"]["name"] for d in rendered if d["kind"] == "Namespace"}
    roles = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in rendered if d["kind"] in ("Role", "ClusterRole")}
    identities = ci_identities()
    found = []
    for b in rendered:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = {(s.get("namespace"), s["name"]) for s in b.get("subjects", []) if s["kind"] == "ServiceAccount"}
        if not subjects & identities:
            continue
        ns = b["metadata"].get("namespace")
        assert b["kind"] == "RoleBinding" and ns in namespaces, f"{b['metadata']['name']}: CI bound cluster-wide"
        role = roles[(ns if b["roleRef"]["kind"] == "Role" else None, b["roleRef"]["name"])]
        found += [(f"{ns}/{role['metadata']['name']}", rule) for rule in role.get("rules", [])]
    return found


def test_the_ci_identity_has_no_pods_exec_in_loopline_namespaces() -> None:
    rules = ci_rules_in_loopline_namespaces()
    assert rules, "no Role of the CI identity rendered (the Kaniko builds need one)"
    for where, rule in rules:
        for resource, verb in (("pods/exec", "create"), ("pods/exec", "get"), ("pods/attach", "create"),
                               ("pods", "create"), ("pods", "update"), ("pods", "patch")):
            assert not grants(rule, resource, verb), f"{where} grants {verb} {resource} to the CI identity: {rule}"


def test_the_ci_role_still_covers_what_deploy_images_does() -> None:
    """scripts/deploy_images.sh: kubectl apply/wait on Jobs, kubectl logs job/... (pods, pods/log)."""
    rules = [rule for _, rule in ci_rules_in_loopline_namespaces()]
    for group, resource, verbs in (("batch", "jobs", ("create", "get", "list", "watch")),
                                   ("", "pods", ("get", "list")), ("", "pods/log", ("get",))):
        for verb in verbs:
            assert any(group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r.get("verbs", [])
                       for r in rules), f"the CI role lacks {verb} {resource}"


def test_agents_and_their_exec_live_in_the_jenkins_namespace() -> None:
    casc = yaml.safe_load((REPO / "jenkins" / "casc.yaml").read_text(encoding="utf-8"))
    cloud = casc["jenkins"]["clouds"][0]["kubernetes"]
    assert cloud["namespace"] == JENKINS_NS
    rbac = docs(REPO / "jenkins" / "agent-rbac.yaml")
    agent_sa = yaml.safe_load((REPO / "jenkins" / "agent-pod.yaml").read_text(encoding="utf-8"))["spec"]["serviceAccountName"]
    assert any(d["kind"] == "ServiceAccount" and d["metadata"]["name"] == agent_sa for d in rbac)
    assert all(d["metadata"]["namespace"] == JENKINS_NS for d in rbac)
    role = next(d for d in rbac if d["kind"] == "Role")
    assert any(grants(r, "pods/exec", "create") for r in role["rules"]), "the Kubernetes plugin needs exec on its agents"
