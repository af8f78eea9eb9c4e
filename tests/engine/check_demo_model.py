#!/usr/bin/env python3
"""The committed demo model (models/sluice-demo.gguf) against the training
script's own PyTorch model (tools/demo_model/train.py, Model) loaded with the
weights the file holds: at every position of chat prompts in English and
Chinese (rendered and tokenized by the engine), the engine's logits match
within 1e-3, and greedy answers match token for token.

Usage: check_demo_model.py SLUICE_LOGITS SLUICE_TOKENIZE MODEL.gguf"""
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tools"))
sys.path.insert(0, os.path.join(here, "..", "..", "tools", "demo_model"))
import torch  # noqa: E402

import corpus  # noqa: E402
import gguf_reader  # noqa: E402
import train  # noqa: E402

BOUND = 1e-3
GENERATE = 24
CHATS = [
    [{"role": "user", "content": "How do I return an item?"}],
    [{"role": "user", "content": "怎么退货？"}],
    [{"role": "user", "content": "Where is my order A1001?"}],
    [{"role": "user", "content": "支持哪些付款方式？"}, {"role": "assistant", "content": "我们支持支付宝。"},
     {"role": "user", "content": "谢谢 🙏"}],
]


def main():
    logits_bin, tokenize_bin, path = sys.argv[1:4]
    torch.set_num_threads(2)
    meta, weights = gguf_reader.read(path)
    shape = dict(train.SHAPE, vocab=len(meta["tokenizer.ggml.tokens"]), dim=meta["llama.embedding_length"],
                 layers=meta["llama.block_count"], heads=meta["llama.attention.head_count"],
                 kv_heads=meta["llama.attention.head_count_kv"], ffn=meta["llama.feed_forward_length"],
                 eps=meta["llama.attention.layer_norm_rms_epsilon"], rope_base=meta["llama.rope.freq_base"])
    model = train.Model(shape)
    model.load(weights)
    items = [{"chat": c, "tools": [corpus.LOOKUP_ORDER_TOOL]} for c in CHATS]
    prompts = train.run_tokenize(tokenize_bin, path, items)
    out = subprocess.run([logits_bin, path, "--threads", "2"], input=json.dumps({"prompts": prompts, "generate": GENERATE}),
                         capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    worst, greedy_ok = 0.0, True
    with torch.no_grad():
        for i, ids in enumerate(prompts):
            ref = model(torch.tensor([ids]))[0].double()
            mine = torch.tensor(got["logits"][i], dtype=torch.float64)
            worst = max(worst, (ref - mine).abs().max().item())
            seq = list(ids)
            for _ in range(GENERATE):
                seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
            if seq[len(ids):] != got["greedy"][i]:
                greedy_ok = False
                print("greedy differs for chat %d:\n  torch  %s\n  engine %s" % (i, seq[len(ids):], got["greedy"][i]))
    ok = worst <= BOUND and greedy_ok
    print("demo model (%d prompts, %d to %d tokens): max |logit diff| %.2e (bound %.0e), greedy %s: %s" %
          (len(prompts), min(map(len, prompts)), max(map(len, prompts)), worst, BOUND,
           "identical" if greedy_ok else "DIFFERENT", "ok" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
