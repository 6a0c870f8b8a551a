# Delivery: images, compose, Kubernetes through Ansible, and the Jenkins pipeline stages.
# Every stage of the root Jenkinsfile is one target here, so `make pipeline` runs the same
# steps locally (push and deploy as dry runs). See docs/deploy.md.

DRY_RUN ?= 1
IMAGE_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
IMAGE_REGISTRY ?= loopline
IMAGE_SERVICES := gateway vqa qa style finetune watchdog
# docker | kaniko | auto (docker when a daemon answers, else Kaniko Jobs when kubectl can create them)
IMAGE_BUILDER ?= auto
K8S_ENV ?= minikube
K8S_DIR ?= k8s
GATEWAY_URL ?= http://127.0.0.1:8000
ANSIBLE_PLAYBOOK := ANSIBLE_CONFIG=ansible/ansible.cfg $(BIN)/ansible-playbook
HADOLINT := $(BIN)/hadolint
# the root Jenkinsfile's stages after checkout, in order (tests/deploy checks they agree)
PIPELINE_STAGES := ci-lint ci-unit ci-deploy-checks train-smoke images eval-gate push deploy smoke
# commands owned by the fine-tune service's CLI
TRAIN_SMOKE_CMD ?= $(LOOPLINE) finetune run qa-extractive --dataset data/samples/qa.json --epochs 1 --wait
EVAL_GATE_CMD ?= $(LOOPLINE) finetune gate --dataset-dir data/samples
# FineTuneModels.Jenkinsfile parameters (same names as the Jenkins job's)
MODEL ?= qa-extractive
DATASET ?= data/samples/qa.json
EPOCHS ?= 1
BATCH_SIZE ?= 8
LEARNING_RATE ?= 0.0002

export DRY_RUN IMAGE_TAG IMAGE_REGISTRY IMAGE_BUILDER

.PHONY: ci-lint ci-unit ci-deploy-checks train-smoke images model-image eval-gate push deploy smoke smoke-local \
        render compose-check k8s-validate hadolint pipeline notify finetune-job

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

images: ## build every service image (docker, or Kaniko in the cluster); DRY_RUN=1 prints when neither exists
	scripts/deploy_images.sh build $(IMAGE_SERVICES)

model-image: ## pack one registry version into an image: make model-image MODEL=qa-extractive VERSION=1
	@test -n "$(VERSION)" || { echo "set VERSION (and MODEL)"; exit 2; }
	docker build -f docker/model.Dockerfile --build-arg MODEL=$(MODEL) --build-arg VERSION=$(VERSION) \
	  -t $(IMAGE_REGISTRY)/model-$(MODEL):$(VERSION) data/registry

eval-gate: models ## CI: evaluation gate on the sample data (non-zero exit blocks the release)
	$(EVAL_GATE_CMD)

push: ## push the images (DRY_RUN=1, the default, prints instead)
	scripts/deploy_images.sh push $(IMAGE_SERVICES)

deploy: ## ansible-playbook deploy.yml for K8S_ENV with IMAGE_TAG (DRY_RUN=1 prints)
	$(if $(filter 1,$(DRY_RUN)),@echo "[dry-run]") $(ANSIBLE_PLAYBOOK) -i ansible/inventories/$(K8S_ENV)/hosts.yml \
	  ansible/deploy.yml -e image_tag=$(IMAGE_TAG) -e image_registry=$(IMAGE_REGISTRY)

smoke: ## /readyz and one request per task against GATEWAY_URL
	$(BIN)/python scripts/deploy_smoke.py $(GATEWAY_URL) $(if $(SMOKE_HOST),--host $(SMOKE_HOST))

smoke-local: install models ## the smoke test against the embedded stack started here
	$(BIN)/python scripts/deploy_smoke.py --start-local $(GATEWAY_URL)

render: ## render the Kubernetes manifests for K8S_ENV into K8S_DIR (default: the committed k8s/)
	$(ANSIBLE_PLAYBOOK) -i ansible/inventories/$(K8S_ENV)/hosts.yml ansible/render.yml -e render_dir=$(abspath $(K8S_DIR))

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
	$(LOOPLINE) finetune run $(MODEL) --dataset $(DATASET) --epochs $(EPOCHS) --batch-size $(BATCH_SIZE) \
	  --learning-rate $(LEARNING_RATE) --wait
