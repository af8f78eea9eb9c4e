#!/usr/bin/env bash
# Gateway benchmark: the release gateway in front of the upstream simulator,
# driven by sluice-loadgen. Prints Markdown tables (bench/README.md keeps the
# results). Everything runs on 127.0.0.1 and stops by itself.
# Usage: bench/run_gateway_bench.sh [paced throughput cancel resume memory metrics] (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release --target sluice sluice-upstream-sim sluice-loadgen >/dev/null
bin=build/release/bin
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

threads=${SLUICE_BENCH_THREADS:-1}   # gateway I/O threads
text=$(printf 'token%.0s ' $(seq 1 64))   # 64 tokens per answer

start_sim() {  # $1: rate (tokens/s per stream, 0 = unthrottled); extra args follow
  local rate=$1; shift
  "$bin/sluice-upstream-sim" --listen 127.0.0.1:0 --port-file "$work/sim.port" --rate "$rate" \
    --text "$text" "$@" 2>/dev/null &
  sim_pid=$!
  while [ ! -s "$work/sim.port" ]; do sleep 0.05; done
  sim_port=$(cat "$work/sim.port"); rm -f "$work/sim.port"
}
start_gateway() {  # extra environment (NAME=value ...) may be given
  env "$@" SLUICE_LOG_ACCESS_LOG=false SLUICE_SERVER_THREADS=$threads SLUICE_LIMITS_MAX_SESSIONS_PER_CONNECTION=64 \
    "$bin/sluice" --listen 127.0.0.1:0 --port-file "$work/gw.port" \
    --upstream "http://127.0.0.1:${sim_port}/v1" 2>/dev/null &
  gw_pid=$!
  while [ ! -s "$work/gw.port" ]; do sleep 0.05; done
  gw_port=$(cat "$work/gw.port"); rm -f "$work/gw.port"
}
stop_all() { kill "$gw_pid" "$sim_pid" 2>/dev/null || true; wait "$gw_pid" "$sim_pid" 2>/dev/null || true; }
loadgen() { "$bin/sluice-loadgen" --url "ws://127.0.0.1:${gw_port}/v1/ws" "$@"; }

section_paced() {
  echo "### Paced streams (simulator at 20 tokens/s per stream, each token stamped)"
  echo
  local header=1 out
  for cs in "1 1" "10 10" "50 20" "100 20"; do
    set -- $cs
    start_sim 20 --stamp --threads 1
    start_gateway
    out=$(loadgen -c "$1" -s "$2" --label "${1}x${2} @20 tok/s")
    if [ $header = 1 ]; then echo "$out"; header=0; else echo "$out" | tail -n 1; fi
    stop_all
  done
}

section_throughput() {
  echo "### Throughput (simulator unthrottled, 64-token answers, 5 turns per session)"
  echo
  local header=1 out
  for cs in "10 10" "50 20"; do
    set -- $cs
    start_sim 0 --stamp --threads 1
    start_gateway
    out=$(loadgen -c "$1" -s "$2" -t 5 --label "${1}x${2} unthrottled")
    if [ $header = 1 ]; then echo "$out"; header=0; else echo "$out" | tail -n 1; fi
    stop_all
  done
}

section_cancel() {
  echo "### Cancel -> upstream sees the abort"
  echo
  start_sim 20
  start_gateway
  loadgen --cancel-probe 50 --sim "http://127.0.0.1:${sim_port}"
  stop_all
}

section_resume() {
  echo "### Resume after 1,000 missed events (simulator at 1,000 tokens/s, stamped)"
  echo
  start_sim 1000 --stamp
  start_gateway
  loadgen --resume-probe 30 --missed 1000 --sim-rate 1000
  stop_all
}

section_metrics() {
  echo "### Metrics on and off (simulator unthrottled, 64-token answers, 50x20 sessions x 5 turns, 3 alternating rounds)"
  echo
  start_sim 0 --stamp --threads 1
  start_gateway SLUICE_METRICS_ENABLED=true
  local on_pid=$gw_pid on_port=$gw_port on_sim=$sim_pid
  start_sim 0 --stamp --threads 1
  start_gateway SLUICE_METRICS_ENABLED=false
  "$bin/sluice-loadgen" --url "ws://127.0.0.1:${on_port}/v1/ws" --url "ws://127.0.0.1:${gw_port}/v1/ws" \
    --label "metrics on" --label "metrics off" -c 50 -s 20 -t 5 --rounds 3
  stop_all
  kill "$on_pid" "$on_sim" 2>/dev/null || true; wait "$on_pid" "$on_sim" 2>/dev/null || true
}

section_memory() {
  echo "### Memory per retained turn (finished 65-token turns kept for resume)"
  echo
  start_sim 0
  start_gateway
  loadgen --retained-probe 5000 --gateway-pid "$gw_pid"
  stop_all
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); gateway I/O threads: $threads"
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(paced throughput cancel resume memory metrics)
for s in "${sections[@]}"; do
  echo
  "section_$s"
done
