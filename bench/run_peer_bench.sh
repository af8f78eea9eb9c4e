#!/usr/bin/env bash
# Peer comparison: the same upstream (sluice-upstream-sim, each token stamped
# with its send time) and the same load generator (sluice-loadgen) against
# Sluice, a Bun relay (Bun.serve's built-in WebSocket server, uWebSockets, and
# fetch) and a Node relay (the `ws` package and fetch), in one run on this
# machine. For each: CPU per relayed token (utime + stime of the relay's
# process, from /proc/PID/stat, over the load, with the kernel's share), added latency p50/p99,
# tokens/s delivered against what the upstream sent, peak RSS, and the RSS of
# idle WebSocket connections. Prints Markdown tables (bench/README.md keeps
# the results). Everything runs on 127.0.0.1 and stops by itself.
#
# Usage: bench/run_peer_bench.sh [paced throughput idle] (default: all)
# Environment: PEER_STREAMS ("200 1000": paced loads, streams = conns x 10),
# PEER_TOKENS (128 per answer), PEER_TURNS (2 per session), PEER_ROUNDS (2),
# PEER_IDLE (8000 idle connections), PEER_RELAYS ("sluice sluice-1t bun node").
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release --target sluice sluice-upstream-sim sluice-loadgen >/dev/null
[ -x bench/peers/node_modules/.bin/bun ] ||
  npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error >/dev/null
bin=build/release/bin
bun=bench/peers/node_modules/.bin/bun
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

streams_list=${PEER_STREAMS:-"200 1000"}
tokens=${PEER_TOKENS:-128}
turns=${PEER_TURNS:-2}
rounds=${PEER_ROUNDS:-2}
idle=${PEER_IDLE:-8000}
relays=${PEER_RELAYS:-"sluice sluice-1t bun node"}
text="token$(printf ' token%.0s' $(seq 2 "$tokens"))"  # the simulator streams one token per word
tck=$(getconf CLK_TCK)
# Idle connections need descriptors in the relay and in the load generator.
ulimit -n "$(ulimit -Hn)"

wait_port() { while [ ! -s "$1" ]; do sleep 0.05; done; cat "$1"; rm -f "$1"; }
start_sim() {  # $1: tokens/s per stream (0: unthrottled)
  "$bin/sluice-upstream-sim" --listen 127.0.0.1:0 --port-file "$work/sim.port" --rate "$1" \
    --text "$text" --stamp --threads 1 2>/dev/null &
  sim_pid=$!
  sim_port=$(wait_port "$work/sim.port")
}
start_relay() {  # $1: sluice | sluice-1t | bun | node
  local up="http://127.0.0.1:${sim_port}/v1"
  case $1 in
    sluice | sluice-1t)
      local threads=0
      [ "$1" = sluice-1t ] && threads=1
      SLUICE_SERVER_THREADS=$threads SLUICE_LIMITS_MAX_CONNECTIONS=200000 \
        "$bin/sluice" --listen 127.0.0.1:0 --port-file "$work/relay.port" --upstream "$up" \
        >/dev/null 2>&1 &
      ;;
    # Bun's fetch runs at most 256 requests at once unless told otherwise, as a
    # user relaying 1,000 streams would find out and do.
    bun) BUN_CONFIG_MAX_HTTP_REQUESTS=65535 UPSTREAM=$up PORT_FILE="$work/relay.port" \
           "$bun" bench/peers/bun_relay.js >/dev/null 2>&1 & ;;
    node) UPSTREAM=$up PORT_FILE="$work/relay.port" node bench/peers/node_ws_relay.js >/dev/null 2>&1 & ;;
  esac
  relay_pid=$!
  relay_port=$(wait_port "$work/relay.port")
  # Bun's npm launcher may exec the real binary: follow it to the process that listens.
  relay_pid=$(pgrep -P "$relay_pid" -n 2>/dev/null || echo "$relay_pid")
}
stop_relay() { kill "$relay_pid" 2>/dev/null || true; sleep 0.3; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }  # the kernel's share (stime)
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# One load against one relay: appends a row to $work/rows.
run_load() {  # $1: relay, $2: connections, $3: sessions per connection, $4: turns, $5: rate
  start_relay "$1"
  local peak=0 r
  ( while kill -0 "$relay_pid" 2>/dev/null; do rss_kib "$relay_pid"; sleep 0.25; done ) >"$work/rss" 2>/dev/null &
  local sampler=$!
  local c0 c1 k0 k1 out
  c0=$(cpu_ticks "$relay_pid")
  k0=$(sys_ticks "$relay_pid")
  out=$("$bin/sluice-loadgen" --url "ws://127.0.0.1:${relay_port}/v1/ws" -c "$2" -s "$3" -t "$4" \
    --threads 1 --label "$1" 2>"$work/loadgen.err" | tail -n 1) || true
  c1=$(cpu_ticks "$relay_pid")
  k1=$(sys_ticks "$relay_pid")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  peak=$(sort -n "$work/rss" | tail -n 1)
  stop_relay
  # loadgen row: | label | conns | sessions | turns | tokens | tokens/s | ttft50 | ttft99 | add50 | add99 | failed |
  IFS='|' read -r _ label conns sessions tturns toks tps _ _ a50 a99 failed _ <<<"$out"
  local expected=$(( $2 * $3 * $4 * tokens ))
  awk -v l="$1" -v s="$sessions" -v tok="$toks" -v sent="$expected" -v tps="$tps" -v a50="$a50" \
      -v a99="$a99" -v cpu=$((c1 - c0)) -v sys=$((k1 - k0)) -v tck="$tck" -v rss="$peak" -v f="$failed" -v rate="$5" \
      'BEGIN { us = tok > 0 ? cpu / tck * 1e6 / tok : 0; ks = tok > 0 ? sys / tck * 1e6 / tok : 0;
               printf "%s|%d|%d|%d|%.0f|%.1f|%s|%s|%.0f|%d|%s|%.1f\n", l, s, tok, sent, tps, us, a50, a99, rss / 1024, f, rate, ks }' \
      >>"$work/rows"
  [ -s "$work/loadgen.err" ] && sed 's/^/  loadgen: /' "$work/loadgen.err" | head -n 3 >&2 || true
}

# Rows of one scenario, averaged over the rounds, with the ratio to Bun's CPU per token.
print_table() {
  echo "| relay | streams | tokens delivered / sent | tokens/s | CPU per token (µs) | of which kernel (µs) | x Bun | added p50 (µs) | added p99 (µs) | peak RSS (MiB) | failed |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'|' '
    { n[$1]++; s[$1] = $2; tok[$1] += $3; sent[$1] += $4; tps[$1] += $5; us[$1] += $6;
      a50[$1] += $7; a99[$1] += $8; ks[$1] += $12; if ($9 > rss[$1]) rss[$1] = $9; f[$1] += $10;
      if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 } }
    END {
      bun = ("bun" in n) ? us["bun"] / n["bun"] : 0;
      for (i = 1; i <= k; i++) { r = order[i];
        printf "| %s | %d | %d / %d | %.0f | %.1f | %.1f | %s | %.0f | %.0f | %d | %d |\n", r, s[r], tok[r], sent[r],
          tps[r] / n[r], us[r] / n[r], ks[r] / n[r], (bun > 0 ? sprintf("%.2f", us[r] / n[r] / bun) : "-"),
          a50[r] / n[r], a99[r] / n[r], rss[r], f[r] }
    }' "$work/rows"
  rm -f "$work/rows"
}

section_paced() {
  for streams in $streams_list; do
    echo "### Paced: $streams streams ($((streams / 10)) connections x 10 sessions), 20 tokens/s each, $tokens-token answers, $turns turns, $rounds rounds"
    echo
    start_sim 20
    for _ in $(seq 1 "$rounds"); do
      for r in $relays; do run_load "$r" $((streams / 10)) 10 "$turns" 20; done
    done
    print_table
    kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true
    echo
  done
}

section_throughput() {
  echo "### Throughput: upstream unthrottled, 100 connections x 10 sessions, $tokens-token answers, 3 turns"
  echo
  start_sim 0
  for r in $relays; do run_load "$r" 100 10 3 0; done
  print_table
  kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true
  echo
}

section_idle() {
  echo "### Idle WebSocket connections ($idle open, no traffic)"
  echo
  start_sim 20
  local header=1 out
  for r in $relays; do
    start_relay "$r"
    out=$("$bin/sluice-loadgen" --url "ws://127.0.0.1:${relay_port}/v1/ws" --idle-probe "$idle" \
      --gateway-pid "$relay_pid" --threads 2) || true
    if [ $header = 1 ]; then
      echo "$out" | head -n 2 | sed 's/^| idle/| relay | idle/; s/^|---:/|---|---:/'
      header=0
    fi
    echo "$out" | tail -n 1 | sed "s/^|/| $r |/"
    stop_relay
  done
  kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true
  echo
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "bun $("$bun" --version), node $(node --version); relays, upstream and load generator share the cores"
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(paced throughput idle)
for s in "${sections[@]}"; do
  echo
  "section_$s"
done
