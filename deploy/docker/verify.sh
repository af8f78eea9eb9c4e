#!/usr/bin/env bash
# Builds the container image from the repository's Dockerfile and runs it,
# with no Docker daemon: Debian's mmdebstrap makes a Debian 12 base image
# locally (minbase), podman imports it and builds the Dockerfile on it
# (--isolation=chroot, the base passed as the BASE build argument), and the
# built image's root filesystem (podman create + podman mount) is started
# with chroot as the image's own user. It must answer /healthz, stream a chat
# answer from the demo model over SSE, and drain on
# SIGTERM. Prints the image size and the build time.
#
# Usage: deploy/docker/verify.sh SOURCE_DIR
# Exit 77 (skipped) where podman or mmdebstrap is not installed or this user
# cannot chroot (it needs root). SLUICE_IMAGE_KEEP=1 keeps the built image.
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
for tool in podman mmdebstrap curl; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (scripts/install-deps.sh): skipped"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "building and chrooting into the image needs root: skipped"; exit 77; }
podman info >/dev/null 2>&1 || { echo "podman cannot run here ($(podman info 2>&1 | tail -n 1)): skipped"; exit 77; }

tag=localhost/sluice:verify-$$
base=localhost/sluice-base:bookworm-$(date +%Y%m%d)  # made again each day: today's updates
work=$(mktemp -d)
ctr=""
gw=""
cleanup() {
  [ -n "$gw" ] && kill "$gw" 2>/dev/null || true
  if [ -n "$ctr" ]; then
    umount "$work/root/proc" 2>/dev/null || true
    umount "$work/root/dev" 2>/dev/null || true
    podman umount "$ctr" >/dev/null 2>&1 || true
    podman rm -f "$ctr" >/dev/null 2>&1 || true
  fi
  [ -n "${SLUICE_IMAGE_KEEP:-}" ] || podman rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The base: Debian 12 minbase, made here (no registry is reached).
if ! podman image exists "$base"; then
  start=$(date +%s)
  # The suites of Debian's own bookworm images (security and point updates
  # too) and, as in their -slim variant, no manuals, translations or docs
  # but the copyright files (the dpkg settings stay in the image, so what the
  # Dockerfile installs leaves them out too).
  mmdebstrap --quiet --variant=minbase \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$work/base.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  podman import --quiet "$work/base.tar" "$base" >/dev/null
  rm -f "$work/base.tar"
  echo "base image $base made by mmdebstrap in $(($(date +%s) - start)) s"
fi

# 2. The image, built from the Dockerfile as it is. The build's ccache is the
# host's (CMakeLists.txt hashes paths relative to the source tree): where the
# host's headers are the image's versions, the release build that ran before
# this test makes the image's build quick; otherwise it compiles afresh.
cache_args=()
cache_dir=$(ccache -k cache_dir 2>/dev/null || true)
if [ -n "$cache_dir" ]; then mkdir -p "$cache_dir" && cache_args=(-v "$cache_dir:/ccache"); fi
# This host's CA bundle for npm's TLS (it may trust a proxy the base does not).
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] && cache_args+=(-v "$ca:/etc/sluice-build-ca.crt:ro")
start=$(date +%s)
if ! podman build --quiet --isolation=chroot --format docker --build-arg "BASE=$base" "${cache_args[@]}" \
       -t "$tag" -f "$src/Dockerfile" "$src" > "$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log"
  echo "FAIL: podman build"
  exit 1
fi
build_s=$(($(date +%s) - start))
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image $tag built in $build_s s: $((size / 1000000)) MB"

# 3. What the image says about itself.
user=$(podman image inspect --format '{{.Config.User}}' "$tag")
health=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$tag")
entry=$(podman image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$tag")
echo "user $user; entrypoint $entry; healthcheck $health"
[ "$user" = "10001:10001" ] || { echo "FAIL: the image runs as '$user', not its non-root user 10001"; exit 1; }
case "$health" in *"/healthz"*) ;; *) echo "FAIL: no HEALTHCHECK on /healthz"; exit 1 ;; esac

# 4. Its root filesystem, started with chroot as that user.
ctr=$(podman create "$tag")
mnt=$(podman mount "$ctr")
ln -s "$mnt" "$work/root"
# What a container runtime would give it: /proc and the device nodes.
mount -t proc proc "$mnt/proc"
mount --bind /dev "$mnt/dev"
[ "$(chroot "$mnt" id -un 10001)" = sluice ] || { echo "FAIL: no user sluice with uid 10001"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/var/lib/sluice SLUICE_SERVER_LISTEN="127.0.0.1:$port" \
  SLUICE_LOG_ACCESS_LOG=false \
  "$(command -v chroot)" --userspec=10001:10001 "$mnt" /bin/sh -c 'cd /var/lib/sluice && exec /usr/local/bin/sluice --config /etc/sluice/sluice.toml' \
  > "$work/gw.log" 2>&1 &
gw=$!
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
  kill -0 "$gw" 2>/dev/null || { cat "$work/gw.log"; echo "FAIL: the gateway exited"; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz"; echo
uid=$(ps -o uid= -p "$gw" | tr -d ' ')  # env, chroot and sh exec one another: one process
echo "the gateway runs as uid $uid"
[ "$uid" = 10001 ] || { echo "FAIL: the gateway runs as uid $uid"; exit 1; }
# The widget is served, with its npm modules as plain files.
curl -fsS -o /dev/null "http://127.0.0.1:$port/" || { echo "FAIL: no widget at /"; exit 1; }
curl -fsS -o /dev/null "http://127.0.0.1:$port/vendor/marked.esm.js" || { echo "FAIL: the widget's Markdown parser is missing"; exit 1; }

# 5. A chat from the demo model, streamed (SSE), with the knowledge base's sources.
curl -fsS -N --max-time 60 "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"sluice-demo","stream":true,"messages":[{"role":"user","content":"How do I return an item?"}]}' \
  > "$work/sse.txt"
deltas=$(grep -c '"delta":{"content"' "$work/sse.txt" || true)
echo "SSE answer: $deltas content deltas; first: $(grep -m1 '"delta":{"content"' "$work/sse.txt" | cut -c1-160)"
[ "$deltas" -ge 5 ] || { cat "$work/sse.txt"; echo "FAIL: the answer did not stream"; exit 1; }
grep -q '^data: \[DONE\]' "$work/sse.txt" || { echo "FAIL: no [DONE]"; exit 1; }
grep -q '"sources"' "$work/sse.txt" || { echo "FAIL: no sources from the knowledge base"; exit 1; }
# Into a file first: `curl | grep -q` fails under pipefail when grep stops
# reading at its first match and curl cannot write the rest.
curl -fsS "http://127.0.0.1:$port/metrics" > "$work/metrics.txt"
grep -q '^sluice_' "$work/metrics.txt" || { echo "FAIL: no metrics"; exit 1; }

# 6. SIGTERM drains and ends the process cleanly.
kill -TERM "$gw"
for _ in $(seq 1 100); do kill -0 "$gw" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$gw" 2>/dev/null; then echo "FAIL: still running 10 s after SIGTERM"; exit 1; fi
wait "$gw" && rc=0 || rc=$?
gw=""
[ "$rc" -eq 0 ] || { tail -n 20 "$work/gw.log"; echo "FAIL: exit status $rc after SIGTERM"; exit 1; }
echo "image: OK ($((size / 1000000)) MB, built in $build_s s)"
