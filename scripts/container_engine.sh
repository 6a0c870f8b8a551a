#!/usr/bin/env bash
# The project's own container engine: Debian podman with the project's containers.conf and a
# storage root under .containers/ (ignored by git). Nothing global on the machine changes.
#
#   scripts/container_engine.sh env            print the exports (eval "$(... env)")
#   scripts/container_engine.sh podman ARGS    podman with the project's configuration
#   scripts/container_engine.sh start|stop|status
#                                              the Docker-compatible API service (podman system
#                                              service) on .containers/podman.sock, and the health
#                                              check ticker, both by pid
#   scripts/container_engine.sh base-image     stand-in base images for offline machines
#                                              (scripts/base_image.sh)
#
# LOOPLINE_CONTAINERS_DIR moves the state (storage, run files, socket); default .containers/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${LOOPLINE_CONTAINERS_DIR:-$root/.containers}
mkdir -p "$state/storage" "$state/run" "$state/tmp" "$state/networks"
state=$(cd "$state" && pwd)

# The committed containers.conf plus this checkout's absolute paths, so two checkouts (or two
# users of podman on one machine) never share run files, networks or events. Written to a
# temporary file and renamed only when it changed: a podman starting meanwhile never reads a
# half-written file.
install_conf() {  # install_conf TARGET (content on stdin)
  local tmp="$1.tmp.$$"
  cat > "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}
{
  sed '/^\[engine\]/q' "$root/docker/podman/containers.conf" | sed '$d'
  printf '[engine]\ntmp_dir = "%s"\n' "$state/run/libpod"
  sed -n '/^\[engine\]/,$p' "$root/docker/podman/containers.conf" | sed '1d'
  printf '\n[network]\nnetwork_config_dir = "%s"\n' "$state/networks"
} | install_conf "$state/containers.conf"
install_conf "$state/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$state/storage"
runroot = "$state/run"
EOF

export CONTAINERS_CONF="$state/containers.conf"
export CONTAINERS_STORAGE_CONF="$state/storage.conf"
export TMPDIR="$state/tmp"
socket="$state/podman.sock"
pidfile="$state/service.pid"
tickerpid="$state/health-ticker.pid"
# Podman runs HEALTHCHECKs from systemd timers; without systemd (these machines) nothing runs
# them and a `depends_on: service_healthy` waits forever. The ticker runs them instead.
HEALTH_INTERVAL=${LOOPLINE_HEALTH_INTERVAL:-5}
export DOCKER_HOST="unix://$socket"

service_alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
ticker_alive() { [ -f "$tickerpid" ] && kill -0 "$(cat "$tickerpid")" 2>/dev/null; }
systemd_timers() { [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; }

stop_pid() {  # stop_pid PIDFILE NAME
  local pid
  if [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; then
    pid=$(cat "$1"); kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "$2 (pid $pid) stopped"
  fi
  rm -f "$1"
}

case "${1:-}" in
  env)
    printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q DOCKER_HOST=%q\n' \
      "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF" "$DOCKER_HOST" ;;
  podman)
    shift; exec podman "$@" ;;
  health-ticker)  # foreground; `start` runs it in the background
    while :; do
      for id in $(podman ps -q --filter health=starting --filter health=healthy --filter health=unhealthy 2>/dev/null); do
        podman healthcheck run "$id" >/dev/null 2>&1 || true
      done
      sleep "$HEALTH_INTERVAL"
    done ;;
  start)
    if ! systemd_timers && ! ticker_alive; then
      setsid "$0" health-ticker > "$state/health-ticker.log" 2>&1 < /dev/null &
      echo $! > "$tickerpid"
    fi
    if service_alive; then echo "podman API service already running (pid $(cat "$pidfile")): $DOCKER_HOST"; exit 0; fi
    rm -f "$socket"
    # setsid: the service outlives this script and is stopped by its pid only
    # The Docker API gives containers the service's own limits, not containers.conf's
    # default_ulimits: cap them to what these hosts allow (higher is refused by runc)
    ( ulimit -n 1024; ulimit -u 4096
      exec setsid podman system service --time=0 "$DOCKER_HOST" > "$state/service.log" 2>&1 < /dev/null ) &
    echo $! > "$pidfile"
    for _ in $(seq 100); do
      [ -S "$socket" ] && curl -fsS --unix-socket "$socket" http://d/_ping >/dev/null 2>&1 && {
        echo "podman API service (pid $(cat "$pidfile")): $DOCKER_HOST"; exit 0; }
      service_alive || break
      sleep 0.1
    done
    echo "podman API service did not start; see $state/service.log" >&2; cat "$state/service.log" >&2; exit 1 ;;
  stop)
    stop_pid "$tickerpid" "health check ticker"
    stop_pid "$pidfile" "podman API service"
    rm -f "$socket" ;;
  status)
    if service_alive; then echo "running (pid $(cat "$pidfile")): $DOCKER_HOST"; else echo "stopped"; exit 1; fi ;;
  base-image)
    shift; exec "$root/scripts/base_image.sh" "$@" ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
