"""Kubernetes runner: one batch/v1 Job per fine-tune job, in the training namespace.

The pod runs the same image (``loopline finetune execute <job>``) with the data volume
mounted, reads the request and the feedback rows frozen at dispatch from
``<state>/finetune/jobs/<job>/``, writes ``progress.json`` while training and
``result.json`` at the end. This runner creates the Job, follows it (progress from the
file, outcome from the Job status and the result), and deletes it on cancel.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from services.common.errors import Unavailable
from services.common.training import JobCancelled, Reporter

from .jobfiles import job_dir, read_json, write_job_files
from .settings import FinetuneSettings
from .store import JobStore

log = logging.getLogger("loopline.finetune.kube")
LABELS = {"app.kubernetes.io/part-of": "loopline", "app.kubernetes.io/component": "training",
          "app.kubernetes.io/name": "finetune-job"}


def k8s_name(job_id: str) -> str:
    return f"loopline-{job_id}".lower()[:63]


def build_job_manifest(settings: FinetuneSettings, job_id: str, model: str) -> dict[str, Any]:
    """The batch/v1 Job for one fine-tune job (validated by kubernetes-validate in the tests)."""
    resources = {"requests": {"cpu": settings.kube_cpu_request, "memory": settings.kube_memory_request},
                 "limits": {"cpu": settings.kube_cpu_limit, "memory": settings.kube_memory_limit}}
    env = [{"name": "LOOPLINE_DATA_DIR", "value": settings.kube_data_mount},
           {"name": "LOOPLINE_FINETUNE_RUNNER", "value": "embedded"},
           {"name": "LOOPLINE_FINETUNE_NUM_THREADS", "value": str(max(1, int(float(settings.kube_cpu_limit))))},
           {"name": "HOME", "value": "/tmp"}]
    container: dict[str, Any] = {
        "name": "train", "image": settings.kube_image, "imagePullPolicy": settings.kube_image_pull_policy,
        "command": ["loopline", "finetune", "execute", job_id], "env": env, "resources": resources,
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": settings.kube_data_mount},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    if settings.kube_config_map:
        container["envFrom"] = [{"configMapRef": {"name": settings.kube_config_map}}]
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never", "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": settings.kube_pvc}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}],
    }
    if settings.kube_service_account:
        pod_spec["serviceAccountName"] = settings.kube_service_account
    if settings.kube_image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": settings.kube_image_pull_secret}]
    if settings.kube_node_selector:
        pod_spec["nodeSelector"] = dict(settings.kube_node_selector)
    labels = {**LABELS, "loopline.io/finetune-job": job_id, "loopline.io/model": model}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": k8s_name(job_id), "namespace": settings.kube_namespace, "labels": labels},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": settings.kube_active_deadline_s,
                 "ttlSecondsAfterFinished": settings.kube_ttl_after_finished_s,
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }


# a pod waiting for one of these does not start on its own: the image is missing or unpullable,
# or its configuration is wrong (waiting the Job's 6 h deadline would block the only worker)
START_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                  "CreateContainerConfigError", "CreateContainerError"}


def batch_api(settings: FinetuneSettings) -> Any:
    from kubernetes import client

    return client.BatchV1Api(api_client(settings))


def core_api(settings: FinetuneSettings) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client(settings))


def api_client(settings: FinetuneSettings) -> Any:
    from kubernetes import client, config

    if settings.kube_api_url:
        cfg = client.Configuration()
        cfg.host = settings.kube_api_url
        cfg.verify_ssl = settings.kube_verify_ssl
        if settings.kube_ca_file:
            cfg.ssl_ca_cert = str(settings.kube_ca_file)
        if settings.kube_token:
            cfg.api_key = {"authorization": settings.kube_token}
            cfg.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(cfg)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class KubernetesRunner:
    """The :class:`~services.finetune.runners.Runner` that trains in a batch/v1 Job per job."""

    name = "kubernetes"
    survives_restart = True

    def __init__(self, settings: FinetuneSettings, store: JobStore, state_dir: Path) -> None:
        self.settings, self.store, self.state_dir = settings, store, Path(state_dir)
        self._api: Any = None
        self._core: Any = None

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = batch_api(self.settings)
        return self._api

    def start_failure(self, name: str) -> str | None:
        """Why the Job's pod cannot start (image pull, container config), or None."""
        from kubernetes.client.exceptions import ApiException

        if self._core is None:
            self._core = core_api(self.settings)
        try:
            pods = self._core.list_namespaced_pod(self.settings.kube_namespace, label_selector=f"job-name={name}")
        except ApiException as exc:
            log.warning("listing the pods of Job %s failed: %s %s", name, exc.status, exc.reason)
            return None
        for pod in pods.items or []:
            for status in (pod.status.container_statuses or []) if pod.status else []:
                waiting = status.state.waiting if status.state else None
                if waiting is not None and waiting.reason in START_FAILURES:
                    return f"{waiting.reason}: {waiting.message or status.image}"
        return None

    def run(self, job_id: str, request: dict[str, Any], feedback: list[dict[str, Any]],
            cancel: threading.Event, reporter: Reporter) -> dict[str, Any]:
        """Dispatch the Job and follow it (progress comes from the pod's progress.json, not ``reporter``)."""
        from kubernetes.client.exceptions import ApiException

        name = k8s_name(job_id)
        write_job_files(self.state_dir, job_id, request, feedback)
        manifest = build_job_manifest(self.settings, job_id, request["model"])
        try:
            self.api.create_namespaced_job(self.settings.kube_namespace, manifest)
        except ApiException as exc:
            raise Unavailable(f"could not create Kubernetes Job {name}: {exc.status} {exc.reason}") from None
        self.store.update(job_id, external=name)
        log.info("created Job %s/%s for %s", self.settings.kube_namespace, name, job_id)
        return self.reattach(job_id, cancel)

    def reattach(self, job_id: str, cancel: threading.Event) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        name, folder = k8s_name(job_id), job_dir(self.state_dir, job_id)
        stuck_since: float | None = None
        while True:
            if cancel.is_set() or self.store.get(job_id).cancel_requested:
                self.cancel(job_id)
                raise JobCancelled("cancelled by request; the Kubernetes Job was deleted")
            progress = read_json(folder / "progress.json")
            if progress:
                self.store.update(job_id, progress=progress)
            try:
                job = self.api.read_namespaced_job_status(name, self.settings.kube_namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return {"status": "failed", "error": f"Kubernetes Job {name} disappeared before it finished"}
                log.warning("reading Job %s failed: %s %s", name, exc.status, exc.reason)
                job = None
            if job is not None and job.status is not None:
                if job.status.succeeded:
                    result = read_json(folder / "result.json")
                    if not result:
                        return {"status": "failed", "error": f"Job {name} succeeded but wrote no result"}
                    return result
                if job.status.failed:
                    result = read_json(folder / "result.json")
                    if result and result.get("status") == "failed":
                        return result
                    return {"status": "failed", "error": f"Kubernetes Job {name} failed: {failure_reason(job)}"}
                reason = self.start_failure(name)
                if reason is None:
                    stuck_since = None
                elif stuck_since is None:
                    stuck_since = time.monotonic()
                if reason and stuck_since is not None and time.monotonic() - stuck_since >= self.settings.kube_start_timeout_s:
                    self.cancel(job_id)
                    return {"status": "failed", "error": f"the pod of Kubernetes Job {name} cannot start ({reason}): "
                                                         f"is the image {self.settings.kube_image} built and pushed?"}
            cancel.wait(self.settings.kube_poll_s)

    def cancel(self, job_id: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_job(k8s_name(job_id), self.settings.kube_namespace,
                                           propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                log.warning("deleting Job for %s failed: %s %s", job_id, exc.status, exc.reason)


def failure_reason(job: Any) -> str:
    for cond in job.status.conditions or []:
        if cond.type == "Failed" and cond.status == "True":
            return f"{cond.reason}: {cond.message}" if cond.message else str(cond.reason)
    return "pod failed"

