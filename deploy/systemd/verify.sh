#!/usr/bin/env bash
# Checks deploy/systemd/sluice.service with systemd-analyze, pointing it at
# a built gateway. Exit 77 (skipped) where systemd-analyze is not installed.
set -euo pipefail
gateway=$1
unit=$(dirname "$0")/sluice.service
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed: skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/sluice|$gateway|" "$unit" > "$dir/sluice.service"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "$dir/sluice.service" 2>&1 || true)
# Only findings about this unit count (the host's own units may have some).
mine=$(echo "$out" | grep 'sluice.service' || true)
if [ -n "$mine" ]; then echo "$mine"; exit 1; fi
echo "sluice.service: valid"
