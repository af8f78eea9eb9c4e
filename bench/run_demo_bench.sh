#!/usr/bin/env bash
# The demo model through the gateway as scripts/run.sh starts it
# (config/sluice.toml: models/sluice-demo.gguf on the local engine, the
# order_lookup plugin): time to first token and tokens/s at 1, 8 and 32
# concurrent sessions, driven by sluice-loadgen over WebSocket. Prints a
# Markdown table (bench/README.md keeps the results).
# Usage: bench/run_demo_bench.sh [TURNS_PER_SESSION]
# SLUICE_BENCH_GATEWAY=PATH runs another build's gateway binary on the same
# configuration, plugins and load (a before/after comparison in one sitting).
set -euo pipefail
cd "$(dirname "$0")/.."
turns=${1:-3}
cmake --preset release >/dev/null
cmake --build --preset release --target sluice order_lookup sluice-loadgen >/dev/null
mkdir -p build/demo
[ -f build/demo/orders.sqlite ] || python3 tools/make_demo_orders.py build/demo/orders.sqlite >/dev/null
bin=build/release/bin
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

SLUICE_LOG_ACCESS_LOG=false SLUICE_LIMITS_MAX_SESSIONS_PER_CONNECTION=64 \
  "${SLUICE_BENCH_GATEWAY:-$bin/sluice}" --config config/sluice.toml --listen 127.0.0.1:0 --port-file "$work/gw.port" 2>"$work/gw.log" &
gateway=$!
while [ ! -s "$work/gw.port" ]; do
  if ! kill -0 $gateway 2>/dev/null; then
    echo "the gateway did not start:" >&2
    cat "$work/gw.log" >&2
    exit 1
  fi
  sleep 0.05
done
port=$(cat "$work/gw.port")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); gateway: $(grep -o 'engine local.*' "$work/gw.log" | head -1)"
echo
loadgen() { "$bin/sluice-loadgen" --url "ws://127.0.0.1:${port}/v1/ws" "$@"; }
# Warm-up: page the model in.
loadgen -c 1 -s 1 -t 1 --input "Hello" >/dev/null
header=1
for question in "How do I return an item?" "怎么退货？"; do
  for sessions in 1 8 32; do
    out=$(loadgen -c "$sessions" -s 1 -t "$turns" --label "$question, $sessions sessions" --input "$question")
    if [ $header = 1 ]; then echo "$out" | head -2; header=0; fi
    echo "$out" | tail -1
  done
done
