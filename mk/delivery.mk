# Delivery: images, compose, Kubernetes through Ansible, and the Jenkins pipeline stages.
# Every stage of the root Jenkinsfile is one target here, so `make pipeline` runs the same
# steps locally (push and deploy as dry runs). See docs/deploy.md.

DRY_RUN ?= 1
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
IMAGE_REGISTRY ?= loopline
IMAGE_SERVICES := gateway vqa qa style finetune watchdog
# docker | podman | kaniko | auto (docker when a daemon answers, else podman, else Kaniko Jobs
# when kubectl can create them)
IMAGE_BUILDER ?= auto
# `make images` builds for real; push and deploy stay dry runs unless DRY_RUN=0
IMAGES_DRY_RUN ?= 0
# torch for the images: TORCH_INDEX_URL / TORCH_WHEEL_DIR, defined in the Makefile
ENGINE := scripts/container_engine.sh
COMPOSE_FILES ?= -f docker-compose.yml $(if $(COMPOSE_STANDINS),-f docker-compose.standins.yml)
# the Elasticsearch stand-in replaces Elasticsearch/Kibana/Filebeat where their images cannot be pulled
COMPOSE_STANDINS ?= $(shell $(ENGINE) podman image exists docker.elastic.co/elasticsearch/elasticsearch:8.15.3 2>/dev/null || echo 1)
COMPOSE := . <($(ENGINE) env) && LOOPLINE_ADMIN_TOKEN=$${LOOPLINE_ADMIN_TOKEN:-compose-local-admin-token-0123} \
  LOOPLINE_IMAGE_TAG=$(IMAGE_TAG) docker-compose -p loopline $(COMPOSE_FILES)
K8S_ENV ?= minikube
K8S_DIR ?= k8s
GATEWAY_URL ?= http://127.0.0.1:8000
ANSIBLE_PLAYBOOK := ANSIBLE_CONFIG=ansible/ansible.cfg $(BIN)/ansible-playbook
HADOLINT := $(BIN)/hadolint
# the root Jenkinsfile's stages after checkout, in order (tests/deploy checks they agree)
PIPELINE_STAGES := install ci-lint ci-unit ci-deploy-checks train-smoke images eval-gate push deploy smoke
# commands owned by the fine-tune service's CLI
# dataset paths are relative to the data root (LOOPLINE_DATA_DIR, ./data)
TRAIN_SMOKE_CMD ?= $(LOOPLINE) finetune run qa-extractive --dataset samples/qa.json --epochs 1 --local --wait
EVAL_GATE_CMD ?= $(LOOPLINE) finetune gate --dataset-dir samples
# FineTuneModels.Jenkinsfile parameters (same names as the Jenkins job's)
MODEL ?= qa-extractive
DATASET ?= samples/qa.json
EPOCHS ?= 1
BATCH_SIZE ?= 8
LEARNING_RATE ?= 0.0002
REASON ?= manual
REGISTRY_DIR ?= data/registry
MODEL_IMAGE_ENGINE ?= $(if $(shell docker info >/dev/null 2>&1 && echo y),docker,podman)

export DRY_RUN IMAGE_TAG IMAGE_REGISTRY IMAGE_BUILDER TORCH_WHEEL_DIR TORCH_INDEX_URL
# Job parameters reach recipes as environment variables, quoted by the shell ("$$MODEL"), never
# spliced into a recipe by make: a value with quotes, $(...), backticks or newlines stays data.
# Jenkins passes them in the environment (`make finetune-job`, no assignments); a value from the
# environment is exported unexpanded. (On make's own command line, `$` is make syntax: write `$$`.)
export MODEL DATASET EPOCHS BATCH_SIZE LEARNING_RATE REASON K8S_ENV

.PHONY: ci-lint ci-unit ci-deploy-checks train-smoke images model-image eval-gate push deploy smoke smoke-local \
        render compose-check k8s-validate hadolint pipeline notify finetune-job base-image engine-start engine-stop \
        compose-up compose-down test-container ci-tools-image

ci-lint: ## CI: ruff (make lint)
	$(MAKE) lint

ci-unit: install ## CI: unit tests with a JUnit report in test-output/
	@mkdir -p test-output
	$(BIN)/python -m pytest -m unit --junitxml=test-output/junit-unit.xml $(PYTEST_ARGS)

ci-deploy-checks: install ## CI: Dockerfiles, compose, Ansible/K8s and Jenkinsfile checks (tests/deploy)
	@mkdir -p test-output
	$(BIN)/python -m pytest -m deploy --junitxml=test-output/junit-deploy.xml $(PYTEST_ARGS)

train-smoke: models ## CI: one tiny LoRA fine-tuning run on the sample data
	$(TRAIN_SMOKE_CMD)

base-image: ## podman stand-ins for python:3.11.13-slim-bookworm and busybox where no image registry answers
	@if $(ENGINE) podman image exists docker.io/library/python:3.11.13-slim-bookworm \
	   || timeout 60 $(ENGINE) podman pull -q docker.io/library/python:3.11.13-slim-bookworm >/dev/null 2>&1; then \
	  echo "base-image: python:3.11.13-slim-bookworm present"; \
	  $(ENGINE) podman image exists docker.io/library/busybox:1.36.1 \
	    || timeout 60 $(ENGINE) podman pull -q docker.io/library/busybox:1.36.1 >/dev/null 2>&1 || scripts/base_image.sh; \
	else scripts/base_image.sh; fi

images: $(if $(filter podman,$(IMAGE_BUILDER)),base-image) ## build every service image for real (docker, podman, or Kaniko in the cluster) and print the sizes
	@if [ "$(IMAGE_BUILDER)" = auto ] && ! docker info >/dev/null 2>&1 && command -v podman >/dev/null; then \
	  $(MAKE) --no-print-directory base-image; fi
	@start=$$(date +%s); DRY_RUN=$(IMAGES_DRY_RUN) scripts/deploy_images.sh build $(IMAGE_SERVICES); \
	  echo "images: done in $$(( $$(date +%s) - start ))s"

model-image: ## pack one registry version into an image: make model-image MODEL=qa-extractive VERSION=1 [REGISTRY_DIR=data/registry]
	@test -n "$(VERSION)" || { echo "set VERSION (and MODEL)"; exit 2; }
	$(if $(filter podman,$(MODEL_IMAGE_ENGINE)),$(ENGINE) podman,docker) build -f docker/model.Dockerfile --build-arg MODEL=$(MODEL) --build-arg VERSION=$(VERSION) \
	  -t $(IMAGE_REGISTRY)/model-$(MODEL):$(VERSION) $(REGISTRY_DIR)/$(MODEL)/$(VERSION)

eval-gate: models ## CI: evaluation gate on the sample data (non-zero exit blocks the release)
	$(EVAL_GATE_CMD)

push: ## push the images (DRY_RUN=1, the default, prints instead)
	scripts/deploy_images.sh push $(IMAGE_SERVICES)

# an empty or unknown K8S_ENV is an error, never a run against no hosts that exits 0
CHECK_K8S_ENV = @test -n "$$K8S_ENV" && test -f "ansible/inventories/$$K8S_ENV/hosts.yml" || { \
	  echo "K8S_ENV='$$K8S_ENV' is not an environment; one of: $$(ls ansible/inventories | tr '\n' ' ')" >&2; exit 2; }

deploy: ## ansible-playbook deploy.yml for K8S_ENV with IMAGE_TAG (DRY_RUN=1 prints)
	$(CHECK_K8S_ENV)
	$(if $(filter 1,$(DRY_RUN)),@echo "[dry-run]") $(ANSIBLE_PLAYBOOK) -i "ansible/inventories/$$K8S_ENV/hosts.yml" \
	  ansible/deploy.yml -e image_tag=$(IMAGE_TAG) -e image_registry=$(IMAGE_REGISTRY)

smoke: ## /readyz and one request per task against GATEWAY_URL
	$(BIN)/python scripts/deploy_smoke.py $(GATEWAY_URL) $(if $(SMOKE_HOST),--host $(SMOKE_HOST))

smoke-local: install models ## the smoke test against the embedded stack started here
	$(BIN)/python scripts/deploy_smoke.py --start-local $(GATEWAY_URL)

render: ## render the Kubernetes manifests for K8S_ENV into K8S_DIR (default: the committed k8s/)
	$(CHECK_K8S_ENV)
	$(ANSIBLE_PLAYBOOK) -i "ansible/inventories/$$K8S_ENV/hosts.yml" ansible/render.yml -e render_dir=$(abspath $(K8S_DIR))

compose-check: ## docker-compose config on docker-compose.yml
	LOOPLINE_ADMIN_TOKEN=$${LOOPLINE_ADMIN_TOKEN:-compose-check-placeholder-token} docker-compose config -q

k8s-validate: ## kubernetes-validate --strict on every committed manifest
	$(BIN)/kubernetes-validate --strict --quiet $(K8S_DIR)/*/*.yaml

hadolint: ## hadolint on every Dockerfile
	$(HADOLINT) docker/*.Dockerfile

pipeline: ## run the Jenkinsfile's stages locally in order; push and deploy are dry runs, smoke hits a local stack
	@set -e; for stage in $(PIPELINE_STAGES); do \
	  target=$$stage; [ $$stage = smoke ] && target=smoke-local; \
	  echo "=== stage: $$stage (make $$target)"; \
	  $(MAKE) --no-print-directory $$target DRY_RUN=1; \
	done; echo "=== pipeline passed"

notify: ## post the build status (STATUS=...) to NOTIFY_WEBHOOK when set
	scripts/deploy_notify.sh "$(STATUS)"

finetune-job: models ## fine-tune MODEL on DATASET with EPOCHS/BATCH_SIZE/LEARNING_RATE and follow it
	$(LOOPLINE) finetune run "$$MODEL" $(if $(filter feedback,$(value DATASET)),--feedback,--dataset "$$DATASET") \
	  --epochs "$$EPOCHS" --batch-size "$$BATCH_SIZE" --learning-rate "$$LEARNING_RATE" --reason "$$REASON" --wait

engine-start: ## start the project's podman API service (Docker API on .containers/podman.sock)
	$(ENGINE) start

engine-stop: ## stop it (by its pid)
	$(ENGINE) stop

compose-up: engine-start ## docker-compose up the whole stack on the images of `make images` (gateway on 127.0.0.1:8000)
	$(COMPOSE) up -d --no-build
	@echo "gateway: http://127.0.0.1:$${LOOPLINE_GATEWAY_PORT:-8000}  (make compose-down stops it)"

compose-down: ## docker-compose down -v: stop the stack and remove its containers, networks and volumes
	@if $(ENGINE) status >/dev/null; then $(COMPOSE) down -v --remove-orphans; fi

test-container: install sysdeps images ## images, compose stack and kube play tests (marker container)
	$(BIN)/python -m pytest -m container $(PYTEST_ARGS)

ci-tools-image: ## the Jenkins agent's tools image (docker/ci-tools.Dockerfile), tagged as jenkins/agent-pod.yaml uses it
	$(if $(shell docker info >/dev/null 2>&1 && echo y),docker,$(ENGINE) podman) build $(if $(shell docker info >/dev/null 2>&1 && echo y),,--format docker) \
	  -f docker/ci-tools.Dockerfile -t $(IMAGE_REGISTRY)/ci-tools:3.11 .
