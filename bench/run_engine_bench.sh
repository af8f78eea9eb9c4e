#!/usr/bin/env bash
# Local engine benchmark: a Qwen2-0.5B-shaped model with random weights in
# BF16 and in Q8_0 (made once by tools/make_test_model.py, kept in
# build/bench-models/), in one run beside its peers on the same files and
# threads:
#   - sluice-engine-bench: decode at 1, 8 and 32 sessions (continuous
#     batching, greedy, 32 tokens each) and a 512-token prompt's processing,
#     1 prompt and 8 at once;
#   - PyTorch (Debian's python3-torch) on the same weights: bfloat16 (where
#     the CPU has AVX-512 BF16) and float32 beside the BF16 model, its
#     dynamic int8 linears beside Q8_0;
#   - llama.cpp, node-llama-cpp 3.21.1's prebuilt CPU build (bench/llama_cpp,
#     installed by `npm ci` there; skipped with a message where it cannot be).
# Prints every row, then the summary tables, and writes them with the CPU's
# model and vector features into bench/README.md (between the
# engine-bench markers).
# Usage: bench/run_engine_bench.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
cmake --preset release >/dev/null
cmake --build --preset release --target sluice-engine-bench >/dev/null
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

llama=1
if [ ! -d bench/llama_cpp/node_modules/node-llama-cpp ]; then
  npm ci --prefix bench/llama_cpp --no-audit --no-fund --loglevel=error --ignore-scripts >/dev/null 2>&1 || llama=0
fi
[ "$llama" = 1 ] || echo "llama.cpp skipped: node-llama-cpp is not installed and npm ci in bench/llama_cpp failed" >&2

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)
features=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx_vnni|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|avx512vbmi|amx_bf16|amx_int8)$' | paste -sd' ' -)
echo "machine: $(nproc) cores, $cpu; $features"

# Each tool's rows, tagged with the engine's name in the summary.
run() {
  local name=$1
  shift
  "$@" | tee -a /dev/stderr | sed -n "s/^\(PREFILL \)\{0,1\}|/$name\t&/p" >>"$raw"
}
for type in bf16 q8_0; do
  model=build/bench-models/qwen2-0.5b-$type.gguf
  if [ ! -f "$model" ]; then
    mkdir -p build/bench-models
    /usr/bin/python3 tools/make_test_model.py "$model" --arch qwen2 --type $type --seed 1 --shape qwen2-0.5b --tokenizer
  fi
  label=$(echo $type | tr a-z A-Z)
  echo
  run "Sluice $label" build/release/bin/sluice-engine-bench "$model" --threads "$threads" --batches 1,8,32 --tokens 32 \
    --prompt 512 --prompts 1,8
  if [ $type = bf16 ]; then
    torch_types="f32"
    if [[ " $features " == *" avx512_bf16 "* ]]; then
      torch_types="bf16 f32"
    else
      # Measured on an AVX2-only EPYC: 1.6 tokens/s at 8 sessions, 2 prompt
      # tokens/s; the 512-token prompts alone would take hours.
      echo "PyTorch bf16 skipped: this CPU has no AVX-512 BF16, where PyTorch 1.13's bfloat16 matmuls crawl; float32 instead" >&2
    fi
  else
    torch_types="int8"
  fi
  for tt in $torch_types; do
    run "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__.split("a")[0])') $tt" \
      /usr/bin/python3 bench/local_engine/torch_decode.py --threads "$threads" --batches 1,8,32 --tokens 32 --dtype $tt \
      --prompt 512 --prompts 1,8
  done
  if [ "$llama" = 1 ]; then
    run "llama.cpp $label" node bench/llama_cpp/decode.mjs "$model" --threads "$threads" --batches 1,8,32 --tokens 32 \
      --prompt 512 --prompts 1,8 --label "$label"
  fi
done

summary=$(/usr/bin/python3 - "$raw" "$threads" "$cpu" "$features" <<'PY'
import sys, datetime, collections
raw, threads, cpu, features = sys.argv[1:5]
decode, prefill = collections.OrderedDict(), collections.OrderedDict()
for line in open(raw, encoding="utf-8"):
    name, row = line.rstrip("\n").split("\t", 1)
    cells = [c.strip() for c in row.split("|")]
    if row.startswith("PREFILL"):  # PREFILL | engine | threads | N x P | tok/s | ms |
        prefill.setdefault(name, {})[cells[3]] = (cells[4], cells[5])
    elif cells[1] == "engine":  # a table's header
        continue
    elif " x " in cells[3]:  # sluice's prompt rows: | sluice | threads | N x P | tok/s | ms |
        prefill.setdefault(name, {})[cells[3]] = (cells[4], cells[5])
    elif cells[3].isdigit() and cells[1] != "engine":
        decode.setdefault(name, {})[cells[3]] = cells[5]
out = ["Run of %s: %s threads on %s (%s)." % (datetime.date.today().isoformat(), threads, cpu, features or "no AVX2"), ""]
sessions = sorted({s for v in decode.values() for s in v}, key=int)
out.append("| decode tokens/s | " + " | ".join("%s session%s" % (s, "" if s == "1" else "s") for s in sessions) + " |")
out.append("|---|" + "---:|" * len(sessions))
for name, v in decode.items():
    out.append("| %s | %s |" % (name, " | ".join(v.get(s, "") for s in sessions)))
shapes = list(dict.fromkeys(s for v in prefill.values() for s in v))
out += ["", "| prompt processing: tokens/s (ms) | " + " | ".join(shapes) + " |", "|---|" + "---:|" * len(shapes)]
for name, v in prefill.items():
    out.append("| %s | %s |" % (name, " | ".join("%s (%s)" % v[s] if s in v else "" for s in shapes)))
print("\n".join(out))
PY
)
echo
echo "$summary"
/usr/bin/python3 - bench/README.md "$summary" <<'PY'
import sys
path, summary = sys.argv[1:3]
text = open(path, encoding="utf-8").read()
begin, end = "<!-- engine-bench:begin -->", "<!-- engine-bench:end -->"
if begin in text and end in text:
    text = text[:text.index(begin) + len(begin)] + "\n" + summary + "\n" + text[text.index(end):]
    open(path, "w", encoding="utf-8").write(text)
    print("bench/README.md: the engine-bench tables replaced", file=sys.stderr)
else:
    print("bench/README.md has no engine-bench markers; tables not written", file=sys.stderr)
PY
