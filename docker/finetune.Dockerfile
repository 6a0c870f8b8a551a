# syntax=docker/dockerfile:1
# Loopline finetune: fine-tuning jobs API, LoRA (torch) and Keras trainers, evaluation gate.
# Build from the repository root:  docker build -f docker/finetune.Dockerfile -t loopline/finetune .
# Models are not baked in: they come from the registry on the shared /data volume
# (or from a model image, see docker/model.Dockerfile).

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first and pinned, as in the Makefile: any other spec resolves to a multi-GB CUDA build
RUN pip install --no-cache-dir torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
# only this service's extras
RUN pip install --no-cache-dir "/src[finetune]"

FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp HF_HOME=/tmp/hf MPLCONFIGDIR=/tmp/mpl \
    LOOPLINE_HOST=0.0.0.0 LOOPLINE_DATA_DIR=/data
# a fixed numeric uid so Kubernetes can prove runAsNonRoot; /data and the log dir are
# owned by it, so a fresh named volume mounted there is writable without chmod tricks
RUN useradd --system --uid 10001 --gid 0 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin loopline \
 && mkdir -p /data /var/log/loopline \
 && chown 10001:0 /data /var/log/loopline
COPY --from=build /opt/venv /opt/venv
COPY scripts/deploy_healthcheck.py /usr/local/bin/loopline-healthcheck
USER 10001
EXPOSE 8104
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["loopline-healthcheck", "finetune"]
CMD ["loopline", "serve", "finetune"]
