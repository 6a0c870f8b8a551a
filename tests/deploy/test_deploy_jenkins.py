"""Jenkinsfiles: they parse with Groovy and every `make` they call is a real target."""

from __future__ import annotations

import re

import pytest
from deploy_helpers import JENKINSFILES, REPO, java_env, make_calls, make_targets, run, tool

pytestmark = pytest.mark.deploy

GROOVY_FILES = JENKINSFILES + [REPO / "jenkins" / "jobs.groovy"]
PARSER = REPO / "tests" / "deploy" / "parse_groovy.groovy"


@pytest.fixture(scope="module")
def targets() -> set[str]:
    found = make_targets()
    assert {"lint", "test", "pipeline"} <= found, "make's database could not be read"
    return found


def _parse(*paths) -> tuple[int, str]:
    result = run([tool("groovy"), str(PARSER), *map(str, paths)], env=java_env())
    return result.returncode, result.stdout + result.stderr


def test_jenkinsfiles_parse_with_groovy() -> None:
    code, out = _parse(*GROOVY_FILES)
    assert code == 0, out
    assert out.count("OK ") == len(GROOVY_FILES)


def test_groovy_parse_rejects_a_broken_file(tmp_path) -> None:
    broken = tmp_path / "Jenkinsfile"
    broken.write_text("pipeline {\n  stages { stage('x') { steps { sh 'make ci-lint' }\n")
    code, out = _parse(broken)
    assert code != 0 and "FAIL" in out


@pytest.mark.parametrize("jenkinsfile", JENKINSFILES, ids=lambda p: p.name)
def test_every_make_call_is_a_real_target(jenkinsfile, targets: set[str]) -> None:
    calls = make_calls(jenkinsfile.read_text())
    assert calls, "no make calls found"
    missing = [t for t in calls if t not in targets]
    assert not missing, f"{jenkinsfile.name} calls make targets that do not exist: {missing}"


def test_the_check_catches_a_missing_target(targets: set[str]) -> None:
    text = "stage('x') { steps { sh 'make ci-lint' } }\nstage('y') { steps { sh \"make -s no-such-target DRY_RUN=0\" } }"
    assert make_calls(text) == ["ci-lint", "no-such-target"]
    assert [t for t in make_calls(text) if t not in targets] == ["no-such-target"]


def test_every_main_stage_is_one_make_target() -> None:
    text = (REPO / "Jenkinsfile").read_text().split("\n    post {", 1)[0]
    stages = re.split(r"\bstage\('", text)[1:]
    for body in stages:
        name = body.split("'")[0]
        if name in ("Checkout", "Checks"):
            continue
        assert len(make_calls(body.split("stage('")[0])) == 1, f"stage {name} must run exactly one make target"


def test_make_pipeline_runs_the_jenkinsfile_stages_in_order() -> None:
    text = (REPO / "Jenkinsfile").read_text()
    stages_part = text.split("stages {", 1)[1].split("\n    post {", 1)[0]
    in_jenkinsfile = make_calls(stages_part)
    dry = run(["make", "-pRrq", "-f", "Makefile", "help"])
    declared = re.search(r"^PIPELINE_STAGES :?= (.*)$", dry.stdout, re.M)
    assert declared, "PIPELINE_STAGES is not defined in mk/delivery.mk"
    assert declared.group(1).split() == in_jenkinsfile


def test_finetune_job_parameters_reach_make() -> None:
    text = (REPO / "jenkins" / "FineTuneModels.Jenkinsfile").read_text()
    delivery = (REPO / "mk" / "delivery.mk").read_text()
    export = re.search(r"^export (MODEL .*)$", delivery, re.M)
    assert export and "sh 'make finetune-job'" in text, "parameters reach make through the environment only"
    for param in ("MODEL", "DATASET", "EPOCHS", "BATCH_SIZE", "LEARNING_RATE", "REASON"):
        assert re.search(rf"name: '{param}'", text) and param in export.group(1).split()
        assert f'"$${param}"' in delivery, f"the recipe quotes {param} as a shell variable"
    assert "build job: 'Loopline'" in text


def test_push_and_deploy_default_to_dry_run() -> None:
    for target in ("push", "deploy"):
        result = run(["make", "-n", target])
        assert result.returncode == 0, result.stderr
    deploy = run(["make", "deploy", "IMAGE_TAG=abc123"])
    assert deploy.returncode == 0 and "[dry-run]" in deploy.stdout and "image_tag=abc123" in deploy.stdout


def test_job_dsl_declares_every_finetune_parameter_and_models_are_free_text() -> None:
    """The watchdog's first buildWithParameters must find every parameter; any model is legal."""
    pipeline = (REPO / "jenkins" / "FineTuneModels.Jenkinsfile").read_text()
    dsl = (REPO / "jenkins" / "jobs.groovy").read_text()
    declared = set(re.findall(r"(?:string|choice|booleanParam)\(name: '(\w+)'", pipeline))
    in_dsl = set(re.findall(r"stringParam\('(\w+)'", dsl))
    assert {"MODEL", "DATASET", "REASON", "LEARNING_RATE"} <= declared == in_dsl
    assert "choice(name: 'MODEL'" not in pipeline, "a choice list refuses models the watchdog can name (style-<name>)"
    assert "sh 'make finetune-job'" in pipeline, "REASON and the rest reach make through the environment"


def test_every_credential_id_used_is_defined_in_casc() -> None:
    used = set()
    for path in (REPO / "Jenkinsfile", REPO / "jenkins" / "FineTuneModels.Jenkinsfile", REPO / "jenkins" / "jobs.groovy"):
        text = path.read_text()
        used |= set(re.findall(r"credentials\('([\w-]+)'\)", text))
        used |= set(re.findall(r"credentialsId: '([\w-]+)'", text))
        used |= set(re.findall(r"tokenCredentialId\('([\w-]+)'\)", text))
    defined = set(re.findall(r"^\s+id: ([\w-]+)$", (REPO / "jenkins" / "casc.yaml").read_text(), re.M))
    assert used and used <= defined, f"undefined credential ids: {used - defined}"
    plugins = (REPO / "jenkins" / "plugins.txt").read_text().split()
    assert "matrix-auth" in plugins and "generic-webhook-trigger" in plugins
