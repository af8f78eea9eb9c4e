#!/usr/bin/env bash
# Scale-out benchmarks (docs/scale-out.md): two gateway instances on one
# redis-server (started here, on free ports, no persistence), the simulated
# upstream, and
#   1. resume on another instance: request -> first replayed event and ->
#      catch-up of a 1,000-event answer, p50/p99;
#   2. CPU per relayed token and Redis commands per token, Redis store
#      against the memory store, same load (sluice-loadgen, paced), same run;
#   3. takeover after SIGKILL of the owner: kill -> next delta elsewhere.
# Prints Markdown tables (bench/README.md keeps the results).
#
# Usage: bench/run_scale_out_bench.sh
# Environment: SCALE_SECTIONS ("resume cpu takeover"), SCALE_RESUMES (50),
# SCALE_TAKEOVERS (20), SCALE_LEASE_MS (1000), SCALE_CONNS (50 connections x
# 10 sessions for the CPU load), SCALE_CPU_REPEATS (3: runs of each store,
# alternating; the ratio of the medians is the figure, one run drifts with
# the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release --target sluice sluice-upstream-sim sluice-loadgen >/dev/null
[ -d bench/peers/node_modules/ws ] || npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error >/dev/null
bin=build/release/bin
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
resumes=${SCALE_RESUMES:-50}
takeovers=${SCALE_TAKEOVERS:-20}
lease=${SCALE_LEASE_MS:-1000}
conns=${SCALE_CONNS:-50}
repeats=${SCALE_CPU_REPEATS:-3}
tck=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { while [ ! -s "$1" ]; do sleep 0.05; done; cat "$1"; rm -f "$1"; }
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" --loglevel warning &
redis_pid=$!
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done
url="redis://127.0.0.1:${redis_port}/0"

start_sim() {  # $1: tokens/s
  "$bin/sluice-upstream-sim" --listen 127.0.0.1:0 --port-file "$work/sim.port" --rate "$1" --threads 1 2>/dev/null &
  sim_pid=$!
  sim_port=$(wait_port "$work/sim.port")
}
gateway_cmd() {  # the command line of one Redis-store instance
  echo env SLUICE_STORE_BACKEND=redis SLUICE_STORE_REDIS_URL="$url" SLUICE_STORE_LEASE_MS="$lease" \
    SLUICE_LIMITS_MAX_CONNECTIONS=100000 SLUICE_LOG_ACCESS_LOG=false \
    "$bin/sluice" --listen 127.0.0.1:0 --upstream "http://127.0.0.1:${sim_port}/v1"
}
start_gateway() {  # $1: name; $2...: extra environment
  local name=$1
  shift
  env "$@" SLUICE_LIMITS_MAX_CONNECTIONS=100000 SLUICE_LOG_ACCESS_LOG=false \
    "$bin/sluice" --listen 127.0.0.1:0 --port-file "$work/$name.port" --upstream "http://127.0.0.1:${sim_port}/v1" \
    >/dev/null 2>&1 &
  eval "${name}_pid=$!"
  eval "${name}_port=\$(wait_port \"$work/$name.port\")"
}
want() { [[ " ${SCALE_SECTIONS:-resume cpu takeover} " == *" $1 "* ]]; }
redis_env=(SLUICE_STORE_BACKEND=redis SLUICE_STORE_REDIS_URL="$url" SLUICE_STORE_LEASE_MS="$lease")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
  "redis $(redis-server --version | awk '{print $3}'); everything shares the cores"
if want resume; then
echo
echo "### Resume on another instance ($resumes sessions, answers of ~1,000 events, upstream unthrottled)"
echo
echo "| measure | samples | p50 | p99 |"
echo "|---|---:|---:|---:|"
start_sim 0
start_gateway a "${redis_env[@]}"
start_gateway b "${redis_env[@]}"
node bench/scale_out/probe.mjs resume "$a_port" "$b_port" "$resumes"
kill "$a_pid" "$b_pid" "$sim_pid"; wait "$a_pid" "$b_pid" "$sim_pid" 2>/dev/null || true
fi

if want cpu; then
echo

echo "### CPU per relayed token: Redis store against the memory store ($((conns * 10)) paced streams, 20 tokens/s, 2 turns; $repeats runs of each, alternating)"
echo
echo "| run | store | tokens delivered | gateway CPU per token (µs) | x memory (same run) | script calls per token | Redis commands per token (in scripts too) | redis-server CPU per token (µs) |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|"
start_sim 20
mem_runs=()
redis_runs=()
for run in $(seq 1 "$repeats"); do
mem_us=0
for store in memory redis; do
  if [ "$store" = redis ]; then start_gateway g "${redis_env[@]}"; else start_gateway g; fi
  redis-cli -p "$redis_port" config resetstat >/dev/null
  r0=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")
  c0=$(awk '{print $14 + $15}' "/proc/$g_pid/stat")
  out=$("$bin/sluice-loadgen" --url "ws://127.0.0.1:${g_port}/v1/ws" -c "$conns" -s 10 -t 2 --threads 1 --label "$store" | tail -n 1)
  c1=$(awk '{print $14 + $15}' "/proc/$g_pid/stat")
  r1=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")
  stats=$(redis-cli -p "$redis_port" info commandstats)
  cmds=$(awk -F'[=,:]' '/^cmdstat_/ && !/cmdstat_(info|config)/ {n += $3} END {print n + 0}' <<<"$stats")
  calls=$(awk -F'[=,:]' '/^cmdstat_(evalsha|eval)/ {n += $3} END {print n + 0}' <<<"$stats")
  kill "$g_pid"; wait "$g_pid" 2>/dev/null || true
  IFS='|' read -r _ _ _ _ _ toks _ <<<"$out"
  us=$(awk -v tok="$toks" -v cpu=$((c1 - c0)) -v tck="$tck" 'BEGIN { printf "%.2f", cpu / tck * 1e6 / tok }')
  awk -v run="$run" -v s="$store" -v tok="$toks" -v us="$us" -v rcpu=$((r1 - r0)) -v tck="$tck" -v cmds="$cmds" -v calls="$calls" -v mem="$mem_us" \
    'BEGIN { rus = rcpu / tck * 1e6 / tok;
             printf "| %d | %s | %d | %.1f | %s | %s | %s | %s |\n", run, s, tok, us, (mem > 0 ? sprintf("%.2f", us / mem) : "1.00"),
               (s == "redis" ? sprintf("%.3f", calls / tok) : "-"), (s == "redis" ? sprintf("%.2f", cmds / tok) : "-"),
               (s == "redis" ? sprintf("%.1f", rus) : "-") }'
  if [ "$store" = memory ]; then mem_us=$us; mem_runs+=("$us"); else redis_runs+=("$us"); fi
done
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
awk -v m="$(median "${mem_runs[@]}")" -v r="$(median "${redis_runs[@]}")" \
  'BEGIN { printf "| median | redis / memory | | %.1f / %.1f | %.2f | | | |\n", r, m, r / m }'
kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
fi

if want takeover; then
echo
echo "### Takeover after SIGKILL of the owner ($takeovers kills, lease $lease ms, upstream 50 tokens/s)"
echo
echo "| measure | samples | p50 | p99 |"
echo "|---|---:|---:|---:|"
start_sim 50
start_gateway b "${redis_env[@]}"
# shellcheck disable=SC2046
node bench/scale_out/probe.mjs takeover "$b_port" "$takeovers" $(gateway_cmd)
fi
