# syntax=docker/dockerfile:1
# Loopline watchdog: live quality policy and retraining triggers (Jenkins / fine-tune service).
# Build from the repository root (make images does this with podman or docker):
#   docker build -f docker/watchdog.Dockerfile -t loopline/watchdog .
# Models are not baked in: they come from the registry on the shared /data volume
# (or from a model image, see docker/model.Dockerfile).
#
# Every service Dockerfile starts with the same lines (tests/deploy checks it), so the images
# share those layers: base + user + venv for all, + CPU torch for the torch images, + the
# service's dependencies, and the code last, so a code change rebuilds one small layer.

FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    HOME=/tmp HF_HOME=/tmp/hf MPLCONFIGDIR=/tmp/mpl \
    LOOPLINE_HOST=0.0.0.0 LOOPLINE_DATA_DIR=/data
# a fixed numeric uid so Kubernetes can prove runAsNonRoot; /data and the log dir are
# owned by it, so a fresh named volume mounted there is writable without chmod tricks
RUN useradd --system --uid 10001 --gid 0 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin loopline \
 && mkdir -p /data /var/log/loopline \
 && chown 10001:0 /data /var/log/loopline \
 && python -m venv /opt/venv
# every pip install below takes its versions and sha256 hashes from the lock (`make lock`), the
# installer first, from its own lines (an older pip checks hashes only on requirements, not on
# constraints): the same versions on every build, whatever the index serves that day
COPY requirements.lock services/ops/lockfile.py /etc/loopline/
# hadolint ignore=DL3013
RUN awk '/^pip==/{p=1;print;next} p&&/^ /{print;next} {p=0}' /etc/loopline/requirements.lock > /tmp/pip.lock \
 && pip install --require-hashes --no-deps -r /tmp/pip.lock && rm /tmp/pip.lock \
 && pip install -c /etc/loopline/requirements.lock setuptools
# the extra's requirements only (read from pyproject.toml, at the lock's versions), so a code
# change does not reinstall them
COPY pyproject.toml /src/pyproject.toml
RUN python /etc/loopline/lockfile.py requirements /src/pyproject.toml watchdog > /src/requirements.txt \
 && pip install -c /etc/loopline/requirements.lock -r /src/requirements.txt && rm -rf /src
COPY pyproject.toml README.md /src/
COPY services /src/services
RUN pip install --no-deps /src && rm -rf /src
COPY scripts/deploy_healthcheck.py /usr/local/bin/loopline-healthcheck
USER 10001
EXPOSE 8105
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["loopline-healthcheck", "watchdog"]
CMD ["loopline", "serve", "watchdog"]
