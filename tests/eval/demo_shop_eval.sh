#!/usr/bin/env bash
# The embedded default, scored: the gateway on config/sluice.toml (the demo
# model on the local engine, order_lookup over the demo orders, the demo
# shop's knowledge base), the held-out question set (eval/demo-shop.jsonl)
# through sluice-eval over WebSocket, with thresholds under which the test
# fails. The thresholds are the figures measured when the model was made
# (models/README.md), a little lower: a regression gate, not the targets.
#
# Usage: tests/eval/demo_shop_eval.sh BIN_DIR [THRESHOLDS]
# (SLUICE_EVAL_KEEP=FILE keeps every answer, as sluice-eval --answers writes them.)
set -euo pipefail
bin=$1
require=${2:-${SLUICE_EVAL_REQUIRE:-recall@3=0.83,recall@1=0.60,citation=0.40,facts=0.36,language=0.96,tool_args=0.65,no_citation=0.80}}
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
work=$(mktemp -d)
trap 'kill $gw 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${SLUICE_EVAL_KEEP:-}" ] && cp "$work/answers.jsonl" "$SLUICE_EVAL_KEEP"; rm -rf "$work"' EXIT
python3 tools/make_demo_orders.py "$work/orders.sqlite" >/dev/null
# config/sluice.toml with this build's plugins and a fresh orders database.
sed -e "s|build/release/plugins/|$(cd "$bin/../plugins" && pwd)/|" \
    -e "s|build/demo/orders.sqlite|$work/orders.sqlite|" config/sluice.toml > "$work/sluice.toml"
SLUICE_LOG_ACCESS_LOG=false "$bin/sluice" --config "$work/sluice.toml" --listen 127.0.0.1:0 \
  --port-file "$work/gw.port" 2>"$work/gw.log" &
gw=$!
for _ in $(seq 1 600); do [ -s "$work/gw.port" ] && break; sleep 0.05; done
[ -s "$work/gw.port" ] || { echo "the gateway did not start:"; cat "$work/gw.log"; exit 1; }
port=$(cat "$work/gw.port")
status=0
"$bin/sluice-eval" --url "ws://127.0.0.1:$port/v1/ws" --questions eval/demo-shop.jsonl -j 4 \
  --require "$require" --failures "$work/failures.jsonl" --answers "$work/answers.jsonl" \
  ${SLUICE_EVAL_ARGS:-} || status=$?
# --answers: one line per question, passed or not.
asked=$(grep -c . eval/demo-shop.jsonl)
answered=$(grep -c '"answer":' "$work/answers.jsonl" || true)
if [ "$answered" -ne "$asked" ]; then
  echo "--answers holds $answered answers for $asked questions"
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "--- the first failed questions:"
  head -n 15 "$work/failures.jsonl" | cut -c1-400
fi
exit "$status"
