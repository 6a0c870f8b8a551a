# syntax=docker/dockerfile:1
# Loopline style: neural style transfer runtime (tensorflow-cpu).
# Build from the repository root:  docker build -f docker/style.Dockerfile -t loopline/style .
# Models are not baked in: they come from the registry on the shared /data volume
# (or from a model image, see docker/model.Dockerfile).

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
# only this service's extras
RUN pip install --no-cache-dir "/src[style]"

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
EXPOSE 8103
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["loopline-healthcheck", "style"]
CMD ["loopline", "serve", "style"]
