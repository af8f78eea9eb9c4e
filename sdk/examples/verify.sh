#!/usr/bin/env bash
# Builds sdk/examples/ out of tree against the SDK as installed by
# `cmake --install`, as a third-party author would, then checks the plugin
# with sluice-plugin-check, and answers through a running gateway with the
# weather example. Usage: verify.sh BUILD_DIR PLUGIN_CHECK_BIN [GATEWAY_BIN SIM_BIN]
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
# The checker comes with the SDK component (the build's own one is the fallback).
if [ -x "$work/prefix/bin/sluice-plugin-check" ]; then check="$work/prefix/bin/sluice-plugin-check"; else
  echo "sluice-plugin-check is not in the installed SDK component"; exit 1
fi
"$check" "$plugin" --settings '{"base_fee_cents": 700}'
# A call, with its result validated: typed arguments (whitespace, key order,
# escapes and all), a not-found answer, and a wrong type.
out=$("$check" "$plugin" --settings '{"base_fee_cents": 700}' --call quote_shipping '{ "country" : "us" }')
grep -q '"cost":"22.00 USD","country":"US","days":9' <<<"$out" || { echo "unexpected call result: $out"; exit 1; }
out=$("$check" "$plugin" --call quote_shipping '{"country":"AQ"}')
grep -q 'status not_found (.* ms): we do not ship to Antarctica' <<<"$out" || { echo "expected not_found: $out"; exit 1; }
if "$check" "$plugin" --settings '{"base_fee_cents": "7"}' >/dev/null 2>"$work/err"; then
  echo "a string base_fee_cents was accepted"; exit 1
fi
grep -q 'setting "base_fee_cents" must be an integer, not a string' "$work/err" || { cat "$work/err"; exit 1; }
# The retriever (ABI 1.2): a passage for a shipping question, none for a joke.
out=$("$check" "$plugin" --settings '{"base_fee_cents": 700}' --retrieve "How much is shipping to Japan? 📦")
echo "$out" | grep -q 'rates "Shipping rates" <https://shop.example/shipping> Shipping costs 7 USD within China' \
  || { echo "the retriever's passage is missing: $out"; exit 1; }
out=$("$check" "$plugin" --retrieve "Tell me a joke")
echo "$out" | grep -q 'retrieve    shipping_pages (.* ms): 0 passages' || { echo "a passage for a joke: $out"; exit 1; }
# The moderator, fed in 3-byte pieces.
out=$("$check" "$plugin" --moderate "See INT-4521 for 详情" --split 3)
grep -q 'moderated .* -> "See \[internal reference\] for 详情"' <<<"$out" || { echo "unexpected moderation: $out"; exit 1; }

# The weather example through a running gateway (its tools in their own
# process), as a new author tries it: a forecast whose station codes the
# plugin's own moderator redacts, and an unknown city.
weather="$work/out/weather.so"
"$check" "$weather" --call get_weather '{"city":"北京","days":2}' | grep -q '"station":"WX-1000"'
if [ $# -ge 4 ]; then
  gateway=$3
  sim=$4
  "$sim" --listen 127.0.0.1:0 --port-file "$work/sim.port" >/dev/null 2>&1 &
  sim_pid=$!
  for _ in $(seq 100); do [ -s "$work/sim.port" ] && break; sleep 0.05; done
  printf '[[plugins]]\npath = "%s"\n[plugins.settings]\nunit = "C"\n' "$weather" >"$work/weather.toml"
  "$gateway" --listen 127.0.0.1:0 --port-file "$work/gw.port" --upstream "http://127.0.0.1:$(cat "$work/sim.port")/v1" \
    --config "$work/weather.toml" >/dev/null 2>"$work/gw.log" &
  gw_pid=$!
  trap 'kill $gw_pid $sim_pid 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 200); do [ -s "$work/gw.port" ] && break; sleep 0.05; done
  ask() {
    curl -sf "http://127.0.0.1:$(cat "$work/gw.port")/v1/chat/completions" -H 'Content-Type: application/json' \
      -d "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"[[sim tool=get_weather args=$1]] 天气\"}]}"
  }
  out=$(ask '{\"city\":\"北京\",\"days\":2}')
  grep -q 'The tool answered: {\\"city\\":\\"Beijing\\"' <<<"$out" || { echo "no forecast: $out"; cat "$work/gw.log"; exit 1; }
  grep -q '\[station\]' <<<"$out" || { echo "station codes not redacted: $out"; exit 1; }
  if grep -q 'WX-1000' <<<"$out"; then echo "a station code got through: $out"; exit 1; fi
  out=$(ask '{\"city\":\"Atlantis\"}')
  grep -q 'no forecast for' <<<"$out" || { echo "expected not found: $out"; exit 1; }
  grep -q 'runs in host process' "$work/gw.log" || { cat "$work/gw.log"; exit 1; }
fi
echo "sdk examples: OK"
