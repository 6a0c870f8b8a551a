#!/usr/bin/env bash
# Build or push the images: scripts/deploy_images.sh build|push SERVICE...
#
# Builder (IMAGE_BUILDER=auto|docker|podman|kaniko): docker when a daemon answers; else podman
# with the project's configuration (scripts/container_engine.sh); else Kaniko Jobs in the
# training namespace (jenkins/kaniko-build-job.yaml) when kubectl may create them; with none,
# DRY_RUN=1 prints the commands and DRY_RUN=0 fails. `make images` builds for real (DRY_RUN=0).
# torch: PyTorch's CPU wheel index by default (TORCH_INDEX_URL); TORCH_WHEEL_DIR=<folder with
# torch-2.13.0+cpu-*.whl> bind-mounts that folder into the build and takes torch from it.
# The finetune service also gets its finetune-full variant (adds TensorFlow for style training).
# Settings: IMAGE_REGISTRY, IMAGE_TAG, DRY_RUN, TRAINING_NAMESPACE, GIT_URL/GIT_COMMIT
# (Jenkins sets these; Kaniko builds from the commit), REGISTRY_USER/REGISTRY_PASSWORD
# (login before a push; Jenkins injects them from its credentials), KANIKO_TIMEOUT (600s),
# KANIKO_JOB_DIR (build/kaniko: the rendered Kaniko Jobs).
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:?usage: $0 build|push SERVICE...}; shift
registry=${IMAGE_REGISTRY:-loopline}
tag=${IMAGE_TAG:-dev}
dry=${DRY_RUN:-1}
namespace=${TRAINING_NAMESPACE:-loopline-training}
# where the rendered Kaniko Jobs are written (kept: they say exactly what was built)
kaniko_dir=${KANIKO_JOB_DIR:-build/kaniko}

pick_builder() {
  case "${IMAGE_BUILDER:-auto}" in
    docker|podman|kaniko) echo "${IMAGE_BUILDER}"; return ;;
  esac
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker
  elif command -v podman >/dev/null 2>&1; then echo podman
  elif command -v kubectl >/dev/null 2>&1 && kubectl auth can-i create jobs -n "$namespace" >/dev/null 2>&1; then echo kaniko
  else echo none; fi
}

run() {  # print, and run unless dry
  echo "+ $*"
  if [ "$dry" != 1 ]; then "$@"; fi
}

kaniko_build() {  # kaniko_build IMAGE_NAME DOCKERFILE_STEM STAGE
  local name=$1 dockerfile=$2 target=$3 context suffix job
  context="git://${GIT_URL#https://}#refs/heads/${BRANCH_NAME:-main}#${GIT_COMMIT:-$(git rev-parse HEAD)}"
  suffix=$(echo "$tag" | tr -c 'a-z0-9\n' '-' | cut -c1-30)
  job="$kaniko_dir/build-$name.job.yaml"
  mkdir -p "$kaniko_dir"
  sed -e "s|\${IMAGE_NAME}|$name|g" -e "s|\${DOCKERFILE}|$dockerfile|g" -e "s|\${TARGET}|$target|g" \
      -e "s|\${JOB_SUFFIX}|$suffix|g" -e "s|\${NAMESPACE}|$namespace|g" \
      -e "s|\${GIT_CONTEXT}|$context|g" -e "s|\${IMAGE_REGISTRY}|$registry|g" -e "s|\${IMAGE_TAG}|$tag|g" \
      -e '/- --target=$/d' jenkins/kaniko-build-job.yaml > "$job"
  run kubectl apply -f "$job"
  # fail fast: a Job that cannot pull its image or push (no registry-credentials Secret) fails
  # within the timeout instead of holding the pipeline for an hour
  run kubectl wait -n "$namespace" --for=condition=complete --timeout="${KANIKO_TIMEOUT:-600}s" "job/build-$name-$suffix" || {
    kubectl logs -n "$namespace" "job/build-$name-$suffix" --tail=50 >&2 || true
    echo "Kaniko build of $name failed or timed out (are the registry-credentials and git-credentials Secrets there? docs/deploy.md)" >&2
    exit 1; }
}

# the stage each image is built from: the Dockerfile's last stage, except finetune-full
# (the training Jobs' image: torch + TensorFlow), an earlier stage of finetune.Dockerfile
final_stage() { sed -n 's/^FROM .* AS \([a-z0-9-]*\)$/\1/p' "docker/$1.Dockerfile" | tail -1; }

builder=$(pick_builder)
echo "images: $action with builder '$builder' (tag $tag, registry $registry, DRY_RUN=$dry)"
if [ "$builder" = none ]; then
  if [ "$dry" != 1 ]; then echo "no docker daemon, no podman and no cluster access for Kaniko: cannot $action images" >&2; exit 1; fi
  builder=docker  # print the docker commands that would run
fi

engine_cmd() {  # the CLI that builds and pushes
  if [ "$builder" = podman ]; then echo "scripts/container_engine.sh podman"; else echo docker; fi
}

torch_args=()
if [ -n "${TORCH_WHEEL_DIR:-}" ]; then
  torch_args=(--build-arg TORCH_INDEX_URL= --build-arg TORCH_WHEELS=/wheels --volume "$(cd "$TORCH_WHEEL_DIR" && pwd):/wheels:ro")
elif [ -n "${TORCH_INDEX_URL:-}" ]; then
  torch_args=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
fi

build_one() {  # build_one NAME DOCKERFILE [extra args]; prints the time it took
  local name=$1 dockerfile=$2 start; shift 2
  start=$(date +%s)
  # shellcheck disable=SC2046
  run $(engine_cmd) build "$@" -f "$dockerfile" -t "$registry/$name:$tag" .
  [ "$dry" = 1 ] || echo "built $registry/$name:$tag in $(( $(date +%s) - start ))s"
}

case "$action" in
  build)
    for service in "$@"; do
      if [ "$builder" = kaniko ]; then
        : "${GIT_URL:?Kaniko builds from the repository: set GIT_URL (Jenkins does)}"
        kaniko_build "$service" "$service" "$(final_stage "$service")"
        if [ "$service" = finetune ]; then kaniko_build finetune-full finetune finetune-full; fi
      else
        extra=(); [ "$builder" = podman ] && extra=(--layers --format docker)  # docker format keeps HEALTHCHECK
        case "$service" in vqa|qa|finetune) extra+=("${torch_args[@]}") ;; esac
        build_one "$service" "docker/$service.Dockerfile" "${extra[@]}"
        if [ "$service" = finetune ]; then
          build_one finetune-full docker/finetune.Dockerfile "${extra[@]}" --target finetune-full
        fi
      fi
    done
    if [ "$builder" != kaniko ]; then
      if [ "$builder" = podman ] && [ "$dry" != 1 ] && ! scripts/container_engine.sh podman image exists docker.elastic.co/beats/filebeat:8.15.3 \
         && ! timeout 60 scripts/container_engine.sh podman pull -q docker.elastic.co/beats/filebeat:8.15.3 >/dev/null 2>&1; then
        echo "filebeat: skipped (its base image docker.elastic.co/beats/filebeat:8.15.3 cannot be pulled here)"
      else
        build_one filebeat docker/filebeat.Dockerfile
      fi
    fi
    if [ "$builder" != kaniko ] && [ "$dry" != 1 ]; then
      echo "image sizes:"
      for service in "$@" $([[ " $* " == *" finetune "* ]] && echo finetune-full); do
        $(engine_cmd) image inspect --format "  $registry/$service:$tag {{.Size}}" "$registry/$service:$tag" \
          | awk '{printf "  %-40s %6.0f MB\n", $1, $2/1e6}'
      done
    fi
    ;;
  push)
    if [ "$builder" = kaniko ]; then echo "Kaniko pushed each image when it built it"; exit 0; fi
    if [ -n "${REGISTRY_USER:-}" ] && [ "$dry" != 1 ]; then
      echo "${REGISTRY_PASSWORD:?}" | $(engine_cmd) login --username "$REGISTRY_USER" --password-stdin "${registry%%/*}"
    fi
    for service in "$@" $([[ " $* " == *" finetune "* ]] && echo finetune-full) filebeat; do
      # shellcheck disable=SC2046
      run $(engine_cmd) push "$registry/$service:$tag"
    done
    ;;
  *) echo "unknown action $action (build|push)" >&2; exit 2 ;;
esac
