#!/usr/bin/env bash
# Builds sdk/examples/ out of tree against the SDK as installed by
# `cmake --install`, as a third-party author would, then checks the plugin
# with sluice-plugin-check. Usage: verify.sh BUILD_DIR PLUGIN_CHECK_BIN
set -euo pipefail
build=$1
check=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --component sdk --prefix "$work/prefix" >/dev/null
test -f "$work/prefix/include/sluice/plugin.h"
# A fresh configure with nothing of this project's build on the path.
cmake -S "$here" -B "$work/out" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/out" >/dev/null
plugin="$work/out/shipping_quote.so"
# Only the entry point is exported.
exported=$(nm -D --defined-only "$plugin" | awk '$2 == "T" {print $3}')
if [ "$exported" != "sluice_plugin_entry" ]; then
  echo "expected only sluice_plugin_entry exported, got: $exported"; exit 1
fi
"$check" "$plugin" --settings '{"base_fee_cents": 700}'
