#!/usr/bin/env python3
"""PyTorch decoding the same random Qwen2-0.5B-shaped weights as the engine
benchmark (tools/make_test_model.py regenerates them from the seed), in the
same type (BF16), with the same threads: the baseline for sluice-engine-bench.

Then prompt processing: 1 and several prompts of --prompt tokens in one
forward pass (causal attention), the time it took.

With --device cuda it runs on the GPU (bench/gpu_check.sh), in the same type.

Usage: torch_decode.py [--threads N] [--batches 1,8,32] [--tokens 32] [--prompt 512] [--prompts 1,8] [--device cpu|cuda]"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import torch  # noqa: E402

import make_test_model as mtm  # noqa: E402

DEV = torch.device("cpu")


def sync():
    """Waits for the GPU's queued work, so that the clock sees it."""
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def rope(x, pos, base, D):
    i = torch.arange(D // 2, dtype=torch.float32, device=x.device)
    theta = pos.to(torch.float32)[:, None] * base ** (-2.0 * i / D)  # (B, D/2)
    c, s = torch.cos(theta)[:, None, :].to(x.dtype), torch.sin(theta)[:, None, :].to(x.dtype)
    a, b = x[..., : D // 2], x[..., D // 2:]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


def int8_linears(W):
    """PyTorch's own int8 path for the matrices: weights quantized per output
    row (symmetric, like Q8_0's per-block scales), activations quantized on
    the fly, run by torch.ops.quantized.linear_dynamic."""
    packed = {}
    for name, w in W.items():
        if w.dim() == 2:
            w = w.float()
            scale = (w.abs().amax(1) / 127).clamp(min=1e-8).double()
            q = torch.quantize_per_channel(w, scale, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
            packed[name] = torch.ops.quantized.linear_prepack(q, None)
    return packed


def matmul(W, dtype, packed):
    """x @ W[name].T, through PyTorch's int8 path when `packed` has it."""
    def mm(x, name):
        if packed is not None:
            return torch.ops.quantized.linear_dynamic(x.float(), packed[name]).to(dtype)
        return x @ W[name].T
    return mm


@torch.inference_mode()
def decode(W, shape, batch, tokens, dtype, packed=None):
    """Aggregate decode tokens/s; packed: int8 matrices from int8_linears."""
    mm = matmul(W, dtype, packed)

    d, H, KV, L = shape["dim"], shape["heads"], shape["kv_heads"], shape["layers"]
    hd = d // H
    ks = [torch.zeros(batch, tokens + 1, KV, hd, dtype=dtype, device=DEV) for _ in range(L)]
    vs = [torch.zeros(batch, tokens + 1, KV, hd, dtype=dtype, device=DEV) for _ in range(L)]
    tok = torch.arange(batch, device=DEV) % 50 + 1
    emb = W["token_embd.weight"]
    t0 = None
    for step in range(tokens + 1):
        if step == 1:
            sync()
            t0 = time.perf_counter()  # the first step is the warm-up
        pos = torch.full((batch,), step, device=DEV)
        x = emb[tok]
        for l in range(L):
            p = "blk.%d." % l
            h = mtm.rmsnorm(x, W[p + "attn_norm.weight"], shape["eps"])
            q = (mm(h, p + "attn_q.weight") + W[p + "attn_q.bias"]).view(batch, 1, H, hd)[:, 0]
            k = (mm(h, p + "attn_k.weight") + W[p + "attn_k.bias"]).view(batch, KV, hd)
            v = (mm(h, p + "attn_v.weight") + W[p + "attn_v.bias"]).view(batch, KV, hd)
            q = rope(q, pos, shape["rope_base"], hd)
            k = rope(k, pos, shape["rope_base"], hd)
            ks[l][:, step] = k
            vs[l][:, step] = v
            kk = ks[l][:, : step + 1].repeat_interleave(H // KV, dim=2)  # (B, T, H, hd)
            vv = vs[l][:, : step + 1].repeat_interleave(H // KV, dim=2)
            att = torch.einsum("bhd,bthd->bht", q, kk) / hd ** 0.5
            out = torch.einsum("bht,bthd->bhd", att.softmax(-1), vv).reshape(batch, d)
            x = x + mm(out, p + "attn_output.weight")
            h = mtm.rmsnorm(x, W[p + "ffn_norm.weight"], shape["eps"])
            x = x + mm(torch.nn.functional.silu(mm(h, p + "ffn_gate.weight")) * mm(h, p + "ffn_up.weight"), p + "ffn_down.weight")
        logits = mm(mtm.rmsnorm(x, W["output_norm.weight"], shape["eps"]), "token_embd.weight")
        tok = logits.float().argmax(-1)
    sync()
    return batch * tokens / (time.perf_counter() - t0)


@torch.inference_mode()
def prefill(W, shape, batch, T, dtype, packed=None):
    """Seconds for one forward pass over `batch` prompts of T tokens (the
    logits of each prompt's last token only, as a server needs)."""
    mm = matmul(W, dtype, packed)

    d, H, KV, L = shape["dim"], shape["heads"], shape["kv_heads"], shape["layers"]
    hd = d // H
    tok = (torch.arange(T, device=DEV)[None, :] * 7 + torch.arange(batch, device=DEV)[:, None]) % 1000 + 1
    pos = torch.arange(T, device=DEV)
    mask = torch.full((T, T), float("-inf"), device=DEV).triu(1).to(dtype)
    sync()
    t0 = time.perf_counter()
    x = W["token_embd.weight"][tok].reshape(batch * T, d)
    for l in range(L):
        p = "blk.%d." % l
        h = mtm.rmsnorm(x, W[p + "attn_norm.weight"], shape["eps"])
        q = (mm(h, p + "attn_q.weight") + W[p + "attn_q.bias"]).view(batch * T, H, hd)
        k = (mm(h, p + "attn_k.weight") + W[p + "attn_k.bias"]).view(batch * T, KV, hd)
        v = (mm(h, p + "attn_v.weight") + W[p + "attn_v.bias"]).view(batch, T, KV, hd)
        q = rope(q, pos.repeat(batch), shape["rope_base"], hd).view(batch, T, H, hd)
        k = rope(k, pos.repeat(batch), shape["rope_base"], hd).view(batch, T, KV, hd)
        kk = k.repeat_interleave(H // KV, dim=2)
        vv = v.repeat_interleave(H // KV, dim=2)
        att = torch.einsum("bqhd,bkhd->bhqk", q, kk) / hd ** 0.5 + mask
        out = torch.einsum("bhqk,bkhd->bqhd", att.softmax(-1), vv).reshape(batch * T, d)
        x = x + mm(out, p + "attn_output.weight")
        h = mtm.rmsnorm(x, W[p + "ffn_norm.weight"], shape["eps"])
        x = x + mm(torch.nn.functional.silu(mm(h, p + "ffn_gate.weight")) * mm(h, p + "ffn_up.weight"), p + "ffn_down.weight")
    last = x.view(batch, T, d)[:, -1]
    mm(mtm.rmsnorm(last, W["output_norm.weight"], shape["eps"]), "token_embd.weight").float().argmax(-1)
    sync()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32", "int8"],
                    help="bf16: the weights in bfloat16 (as the BF16 model); f32: the same weights in float32 (PyTorch's "
                         "fastest path on a CPU without AVX-512 BF16); int8: PyTorch's dynamic int8 linears (beside Q8_0)")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--prompts", default="1,8", help="prompts at once for the prompt-processing run (empty: none)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    global DEV
    DEV = torch.device(a.device)
    torch.set_num_threads(a.threads)
    shape = mtm.SHAPE_05B
    W = {k: v.to(torch.bfloat16) for k, v in mtm.make_weights("qwen2", a.seed, shape).items()}
    dtype = torch.bfloat16
    if a.dtype == "f32":  # the bfloat16 values, held as float32
        W = {k: v.float() for k, v in W.items()}
        dtype = torch.float32
    if a.dtype == "int8" and DEV.type == "cuda":
        sys.exit("--dtype int8 is PyTorch's CPU path (quantized.linear_dynamic); on CUDA use bf16 or f32")
    W = {k: v.to(DEV) for k, v in W.items()}
    packed = int8_linears(W) if a.dtype == "int8" else None
    where = "" if DEV.type == "cpu" else " cuda"
    for batch in [int(b) for b in a.batches.split(",")]:
        tps = decode(W, shape, batch, a.tokens, dtype, packed)
        print("| pytorch %s %s%s | %d | %d | %d | %.1f | %.1f | |" % (torch.__version__, a.dtype, where, a.threads, batch,
                                                               batch * a.tokens, tps, tps / batch), flush=True)
    for batch in [int(b) for b in a.prompts.split(",") if b]:
        prefill(W, shape, batch, 64, dtype, packed)  # warm-up: threads, allocator
        secs = prefill(W, shape, batch, a.prompt, dtype, packed)
        print("PREFILL | pytorch %s %s%s | %d | %d x %d | %.0f | %.1f |" % (torch.__version__, a.dtype, where, a.threads, batch,
                                                                           a.prompt, batch * a.prompt / secs, secs * 1000),
              flush=True)


if __name__ == "__main__":
    main()
