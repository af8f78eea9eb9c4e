// llama.cpp (node-llama-cpp's prebuilt CPU build) on the engine benchmark's
// GGUF files: decode tokens/s at several batch sizes (the sequences of one
// context evaluated together, as llama.cpp's server batches them) and a
// prompt's processing, 1 prompt and several at once, with the same threads.
// Prints the rows of bench/run_engine_bench.sh's tables.
//   node decode.mjs MODEL.gguf --threads N --batches 1,8,32 --tokens 32 --prompt 512 --prompts 1,8 --label BF16
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const at = args.indexOf("--" + name);
  return at >= 0 ? args[at + 1] : fallback;
};
const model_path = args[0];
const threads = Number(opt("threads", 2));
const batches = opt("batches", "1,8,32").split(",").map(Number);
const tokens = Number(opt("tokens", 32));
const prompt_len = Number(opt("prompt", 512));
const prompt_batches = opt("prompts", "1,8").split(",").filter(Boolean).map(Number);
const label = opt("label", "");

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: model_path, gpuLayers: 0 });
const version = "llama.cpp " + (llama.llamaCppRelease?.release ?? "") + " (node-llama-cpp 3.21.1)";

async function with_context(sequences, context_tokens, fn) {
  const context = await model.createContext({
    sequences, contextSize: sequences * context_tokens, batchSize: Math.max(512, sequences * 64), threads,
    flashAttention: false,
  });
  try {
    return await fn(context);
  } finally {
    await context.dispose();
  }
}

// Aggregate decode tokens/s: every sequence starts from a 4-token prompt
// (as sluice-engine-bench's), the first token is the warm-up, greedy.
async function decode(batch) {
  return with_context(batch, 64 + tokens, async (context) => {
    const seqs = Array.from({ length: batch }, () => context.getSequence());
    let started = 0, t0 = 0, generated = 0;
    await Promise.all(seqs.map(async (seq, s) => {
      let n = 0;
      for await (const _ of seq.evaluate([1 + (s % 50), 2, 3, 4], { temperature: 0 })) {
        if (n === 0 && ++started === batch) t0 = performance.now();
        else if (n > 0) ++generated;
        if (++n > tokens) break;
      }
    }));
    return { generated, tps: generated / ((performance.now() - t0) / 1000) };
  });
}

// Time to process `count` prompts of prompt_len tokens submitted at once.
async function prefill(count) {
  return with_context(count, prompt_len + 16, async (context) => {
    const seqs = Array.from({ length: count }, () => context.getSequence());
    const prompt = (s) => Array.from({ length: prompt_len }, (_, i) => 1 + ((i * 7 + s) % 1000));
    const t0 = performance.now();
    await Promise.all(seqs.map((seq, s) => seq.evaluateWithoutGeneratingNewTokens(prompt(s))));
    return (performance.now() - t0) / 1000;
  });
}

for (const b of batches) {
  const { generated, tps } = await decode(b);
  console.log(`| ${version} ${label} | ${threads} | ${b} | ${generated} | ${tps.toFixed(1)} | ${(tps / b).toFixed(1)} | |`);
}
for (const n of prompt_batches) {
  const secs = await prefill(n);  // a fresh context each time: nothing to warm but the weights, read by decode above
  console.log(`PREFILL | ${version} ${label} | ${threads} | ${n} x ${prompt_len} | ${(n * prompt_len / secs).toFixed(0)} | ${(secs * 1000).toFixed(0)} |`);
}
await model.dispose();
