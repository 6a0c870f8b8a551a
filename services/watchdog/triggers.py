"""Retraining triggers: Jenkins ``FineTuneModels`` (python-jenkins), the fine-tune service, or dry-run."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from services.common.settings import CommonSettings
from services.common.tasks import task_claiming

from .settings import WatchdogSettings

log = logging.getLogger("loopline.watchdog.triggers")


class TriggerFailed(RuntimeError):
    pass


class Trigger(Protocol):
    name: str

    def fire(self, model: str, reason: str) -> dict[str, Any]: ...


class DryRunTrigger:
    name = "dry-run"

    def fire(self, model: str, reason: str) -> dict[str, Any]:
        return {"dry_run": True, "would_train": model}


class JenkinsTrigger:
    """``buildWithParameters`` on the FineTuneModels job; python-jenkins fetches the CSRF crumb."""

    name = "jenkins"

    def __init__(self, settings: WatchdogSettings) -> None:
        import jenkins

        self.job = settings.jenkins_job
        self.server = jenkins.Jenkins(str(settings.jenkins_url), username=settings.jenkins_user,
                                      password=settings.jenkins_token, timeout=settings.jenkins_timeout_s)

    def fire(self, model: str, reason: str) -> dict[str, Any]:
        import requests

        import jenkins

        try:
            queue_id = self.server.build_job(self.job, {"MODEL": model, "REASON": reason[:500]})
        except jenkins.JenkinsException as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, requests.exceptions.Timeout) or "timed out" in str(exc):
                raise TriggerFailed("Jenkins did not answer in time") from None
            # python-jenkins messages can quote the URL but never the credentials
            raise TriggerFailed(f"Jenkins refused the build: {str(exc).splitlines()[0][:200]}") from None
        except requests.exceptions.Timeout:
            raise TriggerFailed("Jenkins did not answer in time") from None
        except requests.exceptions.RequestException as exc:
            raise TriggerFailed(f"Jenkins is unreachable ({type(exc).__name__})") from None
        return {"jenkins_job": self.job, "queue_id": queue_id}


class FinetuneTrigger:
    """POST /v1/jobs on the fine-tune service with the model's feedback corrections as data."""

    name = "finetune"

    def __init__(self, common: CommonSettings, settings: WatchdogSettings, token: str) -> None:
        self.url = common.url_of("finetune") + "/v1/jobs"
        self.timeout = settings.finetune_timeout_s
        self.token = token

    def fire(self, model: str, reason: str) -> dict[str, Any]:
        spec = task_claiming(model)
        if spec is not None and not spec.learns_from_feedback:
            raise TriggerFailed(f"{spec.name} models do not learn from feedback corrections: start their job "
                                "by hand or through Jenkins")
        body = {"model": model, "use_feedback": True, "reason": reason[:500], "trigger": "watchdog"}
        try:
            r = httpx.post(self.url, json=body, headers={"Authorization": f"Bearer {self.token}"}, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise TriggerFailed(f"the fine-tune service is unreachable ({type(exc).__name__})") from None
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:200]
            raise TriggerFailed(f"the fine-tune service refused the job ({r.status_code}): {message}")
        return {"job_id": r.json().get("id")}


def make_trigger(common: CommonSettings, settings: WatchdogSettings, token: str) -> Trigger:
    if settings.trigger == "jenkins":
        return JenkinsTrigger(settings)
    if settings.trigger == "finetune":
        return FinetuneTrigger(common, settings, token)
    return DryRunTrigger()
