#!/usr/bin/env bash
# Installs the dependencies, builds Sluice (release) and starts the gateway
# on its embedded default configuration (config/sluice.toml): the demo model
# (models/sluice-demo.gguf) on the local engine, CPU only, no network, with
# the order_lookup plugin over the demo orders database.
#
#   scripts/run.sh               the demo model (the default)
#   scripts/run.sh --simulator   answers from sluice-upstream-sim, a test peer
#                                that streams canned text in vLLM's format
set -euo pipefail
cd "$(dirname "$0")/.."

mode=model
[ "${1:-}" = "--simulator" ] && mode=simulator

bash scripts/install-deps.sh
npm ci --prefix web-demo --no-audit --no-fund --loglevel=error  # the widget's Markdown parser and sanitizer
cmake --preset release >/dev/null
cmake --build --preset release --target sluice order_lookup knowledge_base sluice-upstream-sim sluice-loadgen

bin=build/release/bin
mkdir -p build/demo
[ -f build/demo/orders.sqlite ] || python3 tools/make_demo_orders.py build/demo/orders.sqlite

if [ "$mode" = simulator ]; then
  sim_port=${SLUICE_SIM_PORT:-8000}
  "$bin/sluice-upstream-sim" --listen "127.0.0.1:${sim_port}" --rate 30 &
  sim_pid=$!
  trap 'kill "$sim_pid" 2>/dev/null || true' EXIT
  cat <<MSG

  SIMULATOR: answers come from sluice-upstream-sim on 127.0.0.1:${sim_port}, not from a model.
MSG
  set -- --upstream "http://127.0.0.1:${sim_port}/v1"
  export SLUICE_ENGINE=openai
else
  cat <<MSG

  Demo model: models/sluice-demo.gguf on the local engine (CPU). It is a small
  customer-service model for the demo shop (models/README.md says what it knows).
MSG
  set --
fi
cat <<MSG
  Open http://127.0.0.1:8080/ for the chat widget on a demo page, or use the
  WebSocket at ws://127.0.0.1:8080/v1/ws. In another terminal:

    $bin/sluice-loadgen --say "How do I return an item?"
    $bin/sluice-loadgen --say "我的订单 A1001 到哪了？"

  Stop with Ctrl-C (the gateway drains its connections first).

MSG
"$bin/sluice" --config config/sluice.toml "$@"
