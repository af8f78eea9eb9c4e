#!/usr/bin/env python3
"""PyTorch decoding the same random Qwen2-0.5B-shaped weights as the engine
benchmark (tools/make_test_model.py regenerates them from the seed), in the
same type (BF16), with the same threads: the baseline for sluice-engine-bench.

Usage: torch_decode.py [--threads N] [--batches 1,8,32] [--tokens 32]"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import torch  # noqa: E402

import make_test_model as mtm  # noqa: E402


def rope(x, pos, base, D):
    i = torch.arange(D // 2, dtype=torch.float32)
    theta = pos.to(torch.float32)[:, None] * base ** (-2.0 * i / D)  # (B, D/2)
    c, s = torch.cos(theta)[:, None, :].to(x.dtype), torch.sin(theta)[:, None, :].to(x.dtype)
    a, b = x[..., : D // 2], x[..., D // 2:]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


@torch.inference_mode()
def decode(W, shape, batch, tokens, dtype):
    d, H, KV, L = shape["dim"], shape["heads"], shape["kv_heads"], shape["layers"]
    hd = d // H
    ks = [torch.zeros(batch, tokens + 1, KV, hd, dtype=dtype) for _ in range(L)]
    vs = [torch.zeros(batch, tokens + 1, KV, hd, dtype=dtype) for _ in range(L)]
    tok = torch.arange(batch) % 50 + 1
    emb = W["token_embd.weight"]
    t0 = None
    for step in range(tokens + 1):
        if step == 1:
            t0 = time.perf_counter()  # the first step is the warm-up
        pos = torch.full((batch,), step)
        x = emb[tok]
        for l in range(L):
            p = "blk.%d." % l
            h = mtm.rmsnorm(x, W[p + "attn_norm.weight"], shape["eps"])
            q = (h @ W[p + "attn_q.weight"].T + W[p + "attn_q.bias"]).view(batch, 1, H, hd)[:, 0]
            k = (h @ W[p + "attn_k.weight"].T + W[p + "attn_k.bias"]).view(batch, KV, hd)
            v = (h @ W[p + "attn_v.weight"].T + W[p + "attn_v.bias"]).view(batch, KV, hd)
            q = rope(q, pos, shape["rope_base"], hd)
            k = rope(k, pos, shape["rope_base"], hd)
            ks[l][:, step] = k
            vs[l][:, step] = v
            kk = ks[l][:, : step + 1].repeat_interleave(H // KV, dim=2)  # (B, T, H, hd)
            vv = vs[l][:, : step + 1].repeat_interleave(H // KV, dim=2)
            att = torch.einsum("bhd,bthd->bht", q, kk) / hd ** 0.5
            out = torch.einsum("bht,bthd->bhd", att.softmax(-1), vv).reshape(batch, d)
            x = x + out @ W[p + "attn_output.weight"].T
            h = mtm.rmsnorm(x, W[p + "ffn_norm.weight"], shape["eps"])
            x = x + (torch.nn.functional.silu(h @ W[p + "ffn_gate.weight"].T) * (h @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
        logits = mtm.rmsnorm(x, W["output_norm.weight"], shape["eps"]) @ emb.T
        tok = logits.float().argmax(-1)
    return batch * tokens / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shape = mtm.SHAPE_05B
    W = {k: v.to(torch.bfloat16) for k, v in mtm.make_weights("qwen2", a.seed, shape).items()}
    for batch in [int(b) for b in a.batches.split(",")]:
        tps = decode(W, shape, batch, a.tokens, torch.bfloat16)
        print("| pytorch %s | %d | %d | %d | %.1f | %.1f | |" % (torch.__version__, a.threads, batch, batch * a.tokens, tps, tps / batch),
              flush=True)


if __name__ == "__main__":
    main()
