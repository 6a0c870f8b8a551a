"""Reachability: the connections Loopline needs, checked against the *rendered* NetworkPolicies.

A small evaluator of NetworkPolicy semantics (podSelector, namespaceSelector, both in one peer,
matchLabels and matchExpressions, ports by number or name, Ingress and Egress, "no policy selects
the pod" = open) decides each connection of a declared table: every needed one must be allowed,
and a few that must stay closed must be denied. kube-proxy and a CNI are not needed: this is what
a policy-enforcing CNI (Calico, Cilium) computes from the same objects. The pods come from the
rendered workloads plus the ones created at run time (training Jobs, the Jenkins agent, Kaniko
builds) and outsiders (the ingress controller).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import K8S, REPO, load_docs, of_kind, pod_templates

pytestmark = pytest.mark.deploy


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)  # named container ports

    def __hash__(self) -> int:
        return hash((self.name, self.namespace))


def _match(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector: {} selects everything; matchLabels and matchExpressions are ANDed."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


class Cluster:
    def __init__(self, docs: list[dict[str, Any]], extra_pods: list[Pod]) -> None:
        self.policies = of_kind(docs, "NetworkPolicy")
        self.namespaces = {d["metadata"]["name"]: {**d["metadata"].get("labels", {}),
                                                   "kubernetes.io/metadata.name": d["metadata"]["name"]}
                           for d in of_kind(docs, "Namespace")}
        self.pods: dict[str, Pod] = {}
        for w in pod_templates(docs):
            spec = w["template"]["spec"]
            ports = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", []) if "name" in p}
            labels = w["template"]["metadata"]["labels"]
            self.pods[labels["app.kubernetes.io/name"]] = Pod(labels["app.kubernetes.io/name"], w["namespace"],
                                                              labels, ports)
        for pod in extra_pods:
            self.pods[pod.name] = pod

    def ns_labels(self, ns: str) -> dict[str, str]:
        # the API server labels every namespace with its name (Kubernetes >= 1.22)
        return self.namespaces.get(ns, {"kubernetes.io/metadata.name": ns})

    def _peer_admits(self, peer: dict[str, Any], policy_ns: str, other: Pod) -> bool:
        if "ipBlock" in peer:
            return False  # pod traffic inside the cluster is decided by selectors
        if "namespaceSelector" in peer and not _match(peer["namespaceSelector"], self.ns_labels(other.namespace)):
            return False
        if "namespaceSelector" not in peer and other.namespace != policy_ns:
            return False  # a podSelector alone means pods of the policy's own namespace
        return _match(peer.get("podSelector"), other.labels)

    @staticmethod
    def _port_ok(rule: dict[str, Any], dst: Pod, port: int) -> bool:
        ports = rule.get("ports")
        if not ports:
            return True
        for p in ports:
            if p.get("protocol", "TCP") != "TCP":
                continue
            want = p.get("port")
            if want is None or want == port or (isinstance(want, str) and dst.ports.get(want) == port):
                return True
            if isinstance(want, int) and p.get("endPort") and want <= port <= p["endPort"]:
                return True
        return False

    def _side(self, direction: str, pod: Pod, other: Pod, dst: Pod, port: int) -> bool:
        key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        selecting = [p for p in self.policies if p["metadata"]["namespace"] == pod.namespace
                     and direction in p["spec"].get("policyTypes", ["Ingress"])
                     and _match(p["spec"].get("podSelector"), pod.labels)]
        if not selecting:
            return True  # no policy isolates this pod in this direction
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                from_ok = not rule.get(peers) or any(self._peer_admits(peer, pod.namespace, other)
                                                     for peer in rule[peers])
                if from_ok and self._port_ok(rule, dst, port):
                    return True
        return False

    def allows(self, src: str, dst: str, port: int) -> bool:
        s, d = self.pods[src], self.pods[dst]
        return self._side("Egress", s, d, d, port) and self._side("Ingress", d, s, d, port)


def _runtime_pods() -> list[Pod]:
    """Pods that are not in k8s/: created at run time, or outside Loopline's namespaces."""
    from services.finetune.kube import LABELS as TRAINING_JOB_LABELS

    agent = yaml.safe_load((REPO / "jenkins" / "agent-pod.yaml").read_text(encoding="utf-8"))
    kaniko = yaml.safe_load((REPO / "jenkins" / "kaniko-build-job.yaml").read_text(encoding="utf-8"))
    return [
        Pod("ingress-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
        Pod("jenkins-controller", "jenkins", {"app.kubernetes.io/name": "jenkins"}),
        Pod("jenkins-agent", "jenkins", agent["metadata"]["labels"]),
        Pod("kaniko-build", "loopline-training", kaniko["spec"]["template"]["metadata"]["labels"]),
        Pod("finetune-job", "loopline-training", {**TRAINING_JOB_LABELS, "loopline.io/finetune-job": "j1"}),
    ]


# who talks to whom, on which port (Filebeat runs as a sidecar inside each service pod)
NEEDED = [
    ("ingress-controller", "gateway", 8000, "users reach the API and the UI"),
    ("watchdog", "gateway", 8000, "the watchdog reads metrics through the gateway"),
    ("gateway", "vqa", 8101, "inference"), ("gateway", "qa", 8102, "inference"), ("gateway", "style", 8103, "inference"),
    ("gateway", "finetune", 8104, "the fine-tune proxy"),
    ("watchdog", "finetune", 8104, "the direct retraining trigger"),
    ("jenkins-agent", "finetune", 8104, "FineTuneModels follows its job"),
    *[(svc, "elasticsearch", 9200, "events and Filebeat") for svc in ("gateway", "vqa", "qa", "style", "finetune",
                                                                       "watchdog")],
    ("elasticsearch-security", "elasticsearch", 9200, "the Job that creates the users and roles"),
    ("kibana", "elasticsearch", 9200, "Kibana's backend"),
    ("ingress-controller", "kibana", 5601, "people open the dashboards"),
    ("kibana-import", "kibana", 5601, "the dashboards are imported"),
]
MUST_STAY_CLOSED = [
    ("ingress-controller", "vqa", 8101), ("ingress-controller", "finetune", 8104),
    ("ingress-controller", "elasticsearch", 9200),
    ("finetune-job", "elasticsearch", 9200), ("finetune-job", "gateway", 8000),
    ("kaniko-build", "finetune", 8104), ("kaniko-build", "elasticsearch", 9200),
    ("vqa", "finetune", 8104), ("qa", "vqa", 8101), ("jenkins-agent", "gateway", 8000),
    ("jenkins-controller", "elasticsearch", 9200),
]


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster(load_docs(K8S), _runtime_pods())


@pytest.mark.parametrize(("src", "dst", "port", "why"), NEEDED, ids=[f"{s}->{d}:{p}" for s, d, p, _ in NEEDED])
def test_every_needed_connection_is_allowed(cluster: Cluster, src: str, dst: str, port: int, why: str) -> None:
    assert cluster.allows(src, dst, port), f"{src} -> {dst}:{port} is blocked by the rendered NetworkPolicies ({why})"


@pytest.mark.parametrize(("src", "dst", "port"), MUST_STAY_CLOSED,
                         ids=[f"{s}->{d}:{p}" for s, d, p in MUST_STAY_CLOSED])
def test_connections_that_must_stay_closed_are_denied(cluster: Cluster, src: str, dst: str, port: int) -> None:
    assert not cluster.allows(src, dst, port), f"{src} -> {dst}:{port} must be denied"


@pytest.mark.parametrize("inventory", ["production"])
def test_the_production_render_allows_the_same_connections(rendered: dict[str, Path], inventory: str) -> None:
    prod = Cluster(load_docs(rendered[inventory]), _runtime_pods())
    blocked = [(s, d, p) for s, d, p, _ in NEEDED if not prod.allows(s, d, p)]
    opened = [c for c in MUST_STAY_CLOSED if prod.allows(*c)]
    assert not blocked and not opened, f"production: blocked {blocked}, open {opened}"


def test_the_evaluator_models_selectors_namespaces_and_ports() -> None:
    """The evaluator itself: the rules it must get right, or the checks above prove nothing."""
    ns = {"kind": "Namespace", "metadata": {"name": "a", "labels": {"team": "x"}}}
    pol = {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "a"},
           "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "db"}}, "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}},
                                          {"namespaceSelector": {"matchExpressions": [
                                              {"key": "team", "operator": "In", "values": ["ops"]}]},
                                           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "tool"}}}],
                                 "ports": [{"port": "pg"}]}]}}
    pods = [Pod("db", "a", {"app.kubernetes.io/name": "db"}, {"pg": 5432}),
            Pod("web", "a", {"app.kubernetes.io/name": "web"}), Pod("web-b", "b", {"app.kubernetes.io/name": "web"}),
            Pod("tool", "ops", {"app.kubernetes.io/name": "tool"}),
            Pod("other", "ops", {"app.kubernetes.io/name": "other"})]
    opsns = {"kind": "Namespace", "metadata": {"name": "ops", "labels": {"team": "ops"}}}
    c = Cluster([ns, opsns, pol], pods)
    assert c.allows("web", "db", 5432) and not c.allows("web", "db", 80), "named port resolved, others denied"
    assert not c.allows("web-b", "db", 5432), "a podSelector alone is the policy's namespace only"
    assert c.allows("tool", "db", 5432) and not c.allows("other", "db", 5432), "both selectors in one peer: AND"
    assert c.allows("db", "web", 1), "no policy selects web: open"
    egress = {"kind": "NetworkPolicy", "metadata": {"name": "e", "namespace": "a"},
              "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}, "policyTypes": ["Egress"]}}
    assert not Cluster([ns, opsns, pol, egress], pods).allows("web", "db", 5432), "egress deny-all blocks the caller"
