#!/usr/bin/env bash
# Stand-in base images for machines that reach package registries but no image registry.
#
# Builds, into the project's podman storage (scripts/container_engine.sh):
#   python:3.11.13-slim-bookworm  debootstrap bookworm minbase + python3.11 + venv, `python` at
#                                 /usr/local/bin, and this machine's CA bundle (also given to pip)
#                                 so pip inside a build reaches the package registry through a
#                                 TLS-inspecting proxy
#   busybox:1.36.1                Debian's busybox-static (the model image's base)
# with exactly the names the Dockerfiles use, so nothing in them changes. Everywhere an image
# registry answers, the real images are pulled instead; this is only for offline machines.
# An image that already exists is kept (FORCE=1 rebuilds).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
engine="$root/scripts/container_engine.sh"
python_image=python:3.11.13-slim-bookworm
busybox_image=busybox:1.36.1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
work=$(mktemp -d "${TMPDIR:-/tmp}/loopline-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

have() { "$engine" podman image exists "docker.io/library/$1" && [ "${FORCE:-0}" != 1 ]; }

build_python() {
  local rootfs="$work/python"
  command -v debootstrap >/dev/null || { echo "debootstrap is missing: make sysdeps" >&2; exit 1; }
  echo "base-image: debootstrap bookworm minbase into $rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -30 "$work/debootstrap.log" "$rootfs/debootstrap/debootstrap.log" >&2; exit 1; }
  # python through apt inside the tree: debootstrap's --include cannot order python3.11-venv
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mount -t proc proc "$rootfs/proc"
  trap 'umount "$work/python/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
  chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends python3.11 python3.11-venv ca-certificates netbase tzdata' > "$work/apt.log" 2>&1 \
    || { tail -30 "$work/apt.log" >&2; exit 1; }
  umount "$rootfs/proc"
  : > "$rootfs/etc/resolv.conf"
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
  ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
  # the machine's CA bundle (a TLS-inspecting proxy's CA included), for pip and Python alike
  cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
  # what slim images leave out
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
         "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*
  tar -C "$rootfs" -c . | "$engine" podman import -q \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'ENV PYTHON_VERSION=3.11' \
    --change 'CMD ["python3"]' \
    --message "stand-in for $python_image (debootstrap bookworm, scripts/base_image.sh)" \
    - "docker.io/library/$python_image" >/dev/null
}

build_busybox() {
  local rootfs="$work/busybox"
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc"
  (cd "$work" && apt-get download busybox-static >/dev/null 2>&1) \
    || { echo "cannot download busybox-static (apt-get update?)" >&2; exit 1; }
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/deb"
  cp "$work/deb/bin/busybox" "$rootfs/bin/busybox"
  for applet in $("$rootfs/bin/busybox" --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
  chmod 1777 "$rootfs/tmp"
  tar -C "$rootfs" -c . | "$engine" podman import -q --change 'CMD ["sh"]' \
    --message "stand-in for $busybox_image (Debian busybox-static, scripts/base_image.sh)" \
    - "docker.io/library/$busybox_image" >/dev/null
}

start=$(date +%s)
if have "$python_image"; then echo "base-image: $python_image present"; else build_python; fi
if have "$busybox_image"; then echo "base-image: $busybox_image present"; else build_busybox; fi
"$engine" podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'library/(python|busybox)' || true
echo "base-image: done in $(( $(date +%s) - start ))s"
