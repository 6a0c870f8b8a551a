# syntax=docker/dockerfile:1
# Filebeat for the compose stack with docker/filebeat/filebeat.yml baked in (owned by root,
# not writable by others: Filebeat's permission check passes without --strict.perms=false).
# Kubernetes mounts the same file from a ConfigMap into the stock image.
FROM docker.elastic.co/beats/filebeat:8.15.3
COPY docker/filebeat/filebeat.yml /usr/share/filebeat/filebeat.yml
USER 1000
