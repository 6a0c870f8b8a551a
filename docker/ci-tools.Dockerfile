# syntax=docker/dockerfile:1
# The Jenkins agent's `tools` container (jenkins/agent-pod.yaml): everything the pipelines'
# make targets call that `make install` does not bring (the venv brings ruff, pytest, ansible,
# kubernetes-validate, hadolint): make, git, curl, groovy + a JRE (Jenkinsfile parse check),
# Debian's docker-compose (compose-check), kubectl (Kaniko Jobs, deploy). Runs as uid 1000.
#   docker build -f docker/ci-tools.Dockerfile -t registry.example.com/loopline/ci-tools:3.11 .
FROM python:3.11.13-slim-bookworm
ARG KUBECTL_VERSION=v1.31.4
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      make=4.3-4.1 git=1:2.39.* curl=7.88.* ca-certificates=20230311* groovy=2.4.* default-jre-headless=2:1.17-* \
      docker-compose=1.29.2-* \
 && rm -rf /var/lib/apt/lists/* \
 && curl -fsSLo /usr/local/bin/kubectl "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl" \
 && echo "$(curl -fsSL "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/amd64/kubectl.sha256")  /usr/local/bin/kubectl" \
    | sha256sum -c - \
 && chmod 0755 /usr/local/bin/kubectl \
 && useradd --uid 1000 --create-home --home-dir /home/jenkins jenkins
USER 1000
WORKDIR /home/jenkins/agent
HEALTHCHECK NONE
CMD ["sleep", "infinity"]
