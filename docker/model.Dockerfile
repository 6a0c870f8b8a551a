# syntax=docker/dockerfile:1
# A "model image": one registry version packed into an image, for clusters without shared
# storage. Its default command copies the version into the registry volume, so it runs
# as an init container (see `model_images` in ansible/roles/app/defaults/main.yml).
# The build context is that one version's directory (not the whole registry: other versions and
# the services' .openvino-cache would be sent to the builder for nothing):
#   docker build -f docker/model.Dockerfile --build-arg MODEL=qa-extractive \
#     --build-arg VERSION=1 -t loopline/model-qa-extractive:1 data/registry/qa-extractive/1
FROM busybox:1.36.1
ARG MODEL
ARG VERSION
LABEL org.opencontainers.image.title="loopline model ${MODEL} v${VERSION}"
ENV LOOPLINE_MODEL=${MODEL} LOOPLINE_MODEL_VERSION=${VERSION} LOOPLINE_REGISTRY_DIR=/data/registry
# owned by the uid that runs the copy: the registry writes its files 0600, so a root-owned copy
# would be unreadable to the uid-10001 init container
COPY --chown=10001:0 . /models/${MODEL}/${VERSION}
USER 10001
HEALTHCHECK NONE
# Copy under a temporary name and rename (a reader never sees half a version); an existing
# version is left alone (versions are immutable); production is set only for a new model.
CMD ["sh", "-euc", "src=/models/$LOOPLINE_MODEL/$LOOPLINE_MODEL_VERSION; dst=$LOOPLINE_REGISTRY_DIR/$LOOPLINE_MODEL; mkdir -p \"$dst\"; if [ -d \"$dst/$LOOPLINE_MODEL_VERSION\" ]; then echo \"$LOOPLINE_MODEL v$LOOPLINE_MODEL_VERSION already present\"; exit 0; fi; cp -r \"$src\" \"$dst/.tmp-image-$$\"; mv \"$dst/.tmp-image-$$\" \"$dst/$LOOPLINE_MODEL_VERSION\"; if [ ! -f \"$dst/aliases.json\" ]; then printf '{\"production\": %s, \"canary\": null, \"canary_weight\": 0.0, \"history\": []}' \"$LOOPLINE_MODEL_VERSION\" > \"$dst/.aliases.json.tmp\"; mv \"$dst/.aliases.json.tmp\" \"$dst/aliases.json\"; fi; echo \"installed $LOOPLINE_MODEL v$LOOPLINE_MODEL_VERSION\""]
