"""Wait until each Deployment's *new* pods are rolled out and healthy, like ``kubectl rollout
status`` plus a fast failure on crash-looping new pods.

Waiting for the ``Available`` condition passed a rolling update whose new pods crash-loop: the
old pods still count as available. Here a rollout is done only when the controller has seen the
newest spec and every replica is updated and available; it fails as soon as a pod of the new
ReplicaSet crash-loops or cannot pull its image, or the Deployment exceeds its progress deadline.

    deploy_rollout.py --namespace loopline [--context ctx] [--timeout 900] gateway vqa ...
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

BAD_WAITING = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
               "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
MAX_RESTARTS = 2


def rollout_state(deployment: dict[str, Any], new_pods: list[dict[str, Any]]) -> tuple[str, str]:
    """("done" | "waiting" | "failed", why) for one Deployment and the pods of its newest ReplicaSet
    (both as the API returns them, camelCase dicts)."""
    meta, spec, status = deployment["metadata"], deployment.get("spec", {}), deployment.get("status", {})
    name = meta["name"]
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return "failed", f"{name}: exceeded its progress deadline ({cond.get('message', '')})"
    for pod in new_pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in BAD_WAITING:
                return "failed", f"{name}: new pod {pod['metadata']['name']} container {cs['name']} is {waiting['reason']}"
            if cs.get("restartCount", 0) > MAX_RESTARTS and not cs.get("ready"):
                return "failed", f"{name}: new pod {pod['metadata']['name']} restarted {cs['restartCount']} times"
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return "waiting", f"{name}: the controller has not seen the new spec yet"
    wanted = spec.get("replicas", 1)
    updated, available = status.get("updatedReplicas", 0), status.get("availableReplicas", 0)
    total = status.get("replicas", 0)
    if updated < wanted:
        return "waiting", f"{name}: {updated} of {wanted} replicas updated"
    if total > updated:
        return "waiting", f"{name}: {total - updated} old replicas still terminating"
    if available < updated:
        return "waiting", f"{name}: {available} of {updated} updated replicas available"
    return "done", f"{name}: rolled out ({updated} replicas)"


def _new_pods(core: Any, apps: Any, namespace: str, deployment: Any) -> list[dict[str, Any]]:
    """Pods of the Deployment's newest ReplicaSet (matching its revision annotation)."""
    revision = (deployment.metadata.annotations or {}).get("deployment.kubernetes.io/revision")
    selector = ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())
    sets = apps.list_namespaced_replica_set(namespace, label_selector=selector).items
    newest = [rs for rs in sets if (rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision") == revision]
    if not newest:
        return []
    hash_label = newest[0].metadata.labels.get("pod-template-hash")
    pods = core.list_namespaced_pod(namespace, label_selector=f"{selector},pod-template-hash={hash_label}").items
    return [core.api_client.sanitize_for_serialization(p) for p in pods]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("deployments", nargs="+")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--context")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)

    from kubernetes import client, config

    config.load_kube_config(context=args.context)
    apps, core = client.AppsV1Api(), client.CoreV1Api()
    deadline = time.monotonic() + args.timeout
    pending = list(args.deployments)
    while pending:
        for name in list(pending):
            dep = apps.read_namespaced_deployment(name, args.namespace)
            state, why = rollout_state(apps.api_client.sanitize_for_serialization(dep),
                                       _new_pods(core, apps, args.namespace, dep))
            print(why, flush=True)
            if state == "failed":
                return 1
            if state == "done":
                pending.remove(name)
        if pending and time.monotonic() > deadline:
            print(f"timed out after {args.timeout:.0f}s waiting for {', '.join(pending)}", file=sys.stderr)
            return 1
        if pending:
            time.sleep(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
