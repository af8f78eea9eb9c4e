#!/usr/bin/env bash
# Installs the dependencies, builds Sluice (release) and starts the gateway
# on its embedded default configuration (config/sluice.toml).
#
# Until the local engine exists, answers come from the upstream SIMULATOR
# (sluice-upstream-sim): a test peer that streams canned text in vLLM's
# format. It is not a model.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target sluice sluice-upstream-sim sluice-loadgen

bin=build/release/bin
sim_port=${SLUICE_SIM_PORT:-8000}
"$bin/sluice-upstream-sim" --listen "127.0.0.1:${sim_port}" --rate 30 &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true' EXIT

cat <<MSG

  SIMULATOR: answers come from sluice-upstream-sim on 127.0.0.1:${sim_port}, not from a model.
  The gateway listens on ws://127.0.0.1:8080/v1/ws. In another terminal:

    $bin/sluice-loadgen --say "How do I return an item?"

  Stop with Ctrl-C (the gateway drains its connections first).

MSG
"$bin/sluice" --config config/sluice.toml --upstream "http://127.0.0.1:${sim_port}/v1"
