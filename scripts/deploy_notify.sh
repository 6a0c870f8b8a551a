#!/usr/bin/env bash
# Post a build status to a chat/webhook endpoint: scripts/deploy_notify.sh SUCCESS|FAILURE|...
# NOTIFY_WEBHOOK (a URL, e.g. a Slack/Teams/Mattermost incoming webhook) is the setting;
# unset means "no webhook" and the script only prints. Jenkins also sends mail (NOTIFY_EMAIL).
set -euo pipefail
status=${1:-UNKNOWN}
job=${JOB_NAME:-local}
build=${BUILD_NUMBER:-0}
link=${BUILD_URL:-}
text="Loopline ${job} #${build}: ${status} (image tag ${IMAGE_TAG:-dev}) ${link}"
echo "${text}"
if [ -n "${NOTIFY_WEBHOOK:-}" ]; then
  payload=$(printf '{"text": "%s"}' "${text//\"/\\\"}")
  curl -fsS --max-time 15 -X POST -H 'Content-Type: application/json' -d "${payload}" "${NOTIFY_WEBHOOK}" >/dev/null
fi
