#!/usr/bin/env bash
# Installs every build and test dependency of Sluice from Debian 12's archive.
# Works as root, or through sudo for any other user. Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libboost1.81-dev libboost-system1.81-dev libboost-url1.81-dev
  libcurl4-openssl-dev libssl-dev
  libjwt-dev libsqlite3-dev libicu-dev python3 python3-torch prometheus
  # Debian's torch calls the system BLAS; OpenBLAS replaces the reference one
  # (20x faster matrix products for the PyTorch reference and training).
  libopenblas0-pthread
  # The widget's browser tests: Chromium, driven by playwright-core, and
  # fonts for Chinese and emoji in its screenshots.
  chromium fonts-wqy-zenhei fonts-noto-color-emoji
  libsimdjson-dev libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev
  # The plugin SDK's typed arguments and results (sluice/json.hpp): the JSON
  # library plugin authors already use.
  nlohmann-json3-dev
  # The Redis session store: hiredis (driven by the gateway's Asio loop) and
  # the real redis-server that the scale-out tests start.
  libhiredis-dev redis-server
  # The nginx that the scale-out tests put in front of several instances.
  nginx
  clang libclang-rt-14-dev
  # The deploy tests: the container image built with podman on a base made by
  # mmdebstrap, the compose file checked by docker-compose and podman-compose,
  # YAML linted, a TLS variant of the nginx site checked with a throwaway
  # certificate.
  podman mmdebstrap docker-compose podman-compose yamllint python3-yaml openssl
  curl procps
)

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: run as root or install sudo" >&2
  exit 1
fi

# Node.js runs the end-to-end tests with real npm clients; any Node >= 18
# will do, so Debian's is installed only where there is none.
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
# kubectl renders the Kubernetes manifests (kubectl kustomize); Debian's
# kubernetes-client only where no kubectl is installed.
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
