#!/usr/bin/env bash
# Build or push the service images: scripts/deploy_images.sh build|push SERVICE...
#
# Builder (IMAGE_BUILDER=auto|docker|kaniko): docker when a daemon answers; otherwise Kaniko
# Jobs in the training namespace (jenkins/kaniko-build-job.yaml) when kubectl may create
# them; with neither, DRY_RUN=1 prints the commands and DRY_RUN=0 fails.
# Settings: IMAGE_REGISTRY, IMAGE_TAG, DRY_RUN, TRAINING_NAMESPACE, GIT_URL/GIT_COMMIT
# (Jenkins sets these; Kaniko builds from the commit), REGISTRY_USER/REGISTRY_PASSWORD
# (docker login before a push; Jenkins injects them from its credentials).
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:?usage: $0 build|push SERVICE...}; shift
registry=${IMAGE_REGISTRY:-loopline}
tag=${IMAGE_TAG:-dev}
dry=${DRY_RUN:-1}
namespace=${TRAINING_NAMESPACE:-loopline-training}

pick_builder() {
  case "${IMAGE_BUILDER:-auto}" in
    docker|kaniko) echo "${IMAGE_BUILDER}"; return ;;
  esac
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker
  elif command -v kubectl >/dev/null 2>&1 && kubectl auth can-i create jobs -n "$namespace" >/dev/null 2>&1; then echo kaniko
  else echo none; fi
}

run() {  # print, and run unless dry
  echo "+ $*"
  if [ "$dry" != 1 ]; then "$@"; fi
}

kaniko_build() {
  local service=$1 context suffix
  context="git://${GIT_URL#https://}#refs/heads/${BRANCH_NAME:-main}#${GIT_COMMIT:-$(git rev-parse HEAD)}"
  suffix=$(echo "$tag" | tr -c 'a-z0-9\n' '-' | cut -c1-30)
  sed -e "s|\${SERVICE}|$service|g" -e "s|\${JOB_SUFFIX}|$suffix|g" -e "s|\${NAMESPACE}|$namespace|g" \
      -e "s|\${GIT_CONTEXT}|$context|g" -e "s|\${IMAGE_REGISTRY}|$registry|g" -e "s|\${IMAGE_TAG}|$tag|g" \
      jenkins/kaniko-build-job.yaml > "build-$service.job.yaml"
  run kubectl apply -f "build-$service.job.yaml"
  run kubectl wait -n "$namespace" --for=condition=complete --timeout=3600s "job/build-$service-$suffix"
  rm -f "build-$service.job.yaml"
}

builder=$(pick_builder)
echo "images: $action with builder '$builder' (tag $tag, registry $registry, DRY_RUN=$dry)"
if [ "$builder" = none ]; then
  if [ "$dry" != 1 ]; then echo "no docker daemon and no cluster access for Kaniko: cannot $action images" >&2; exit 1; fi
  builder=docker  # print the docker commands that would run
fi

case "$action" in
  build)
    for service in "$@"; do
      if [ "$builder" = kaniko ]; then
        : "${GIT_URL:?Kaniko builds from the repository: set GIT_URL (Jenkins does)}"
        kaniko_build "$service"
      else
        run docker build -f "docker/$service.Dockerfile" -t "$registry/$service:$tag" .
      fi
    done
    if [ "$builder" = docker ]; then run docker build -f docker/filebeat.Dockerfile -t "$registry/filebeat:$tag" .; fi
    ;;
  push)
    if [ "$builder" = kaniko ]; then echo "Kaniko pushed each image when it built it"; exit 0; fi
    if [ -n "${REGISTRY_USER:-}" ] && [ "$dry" != 1 ]; then
      echo "${REGISTRY_PASSWORD:?}" | docker login --username "$REGISTRY_USER" --password-stdin "${registry%%/*}"
    fi
    for service in "$@" filebeat; do run docker push "$registry/$service:$tag"; done
    ;;
  *) echo "unknown action $action (build|push)" >&2; exit 2 ;;
esac
