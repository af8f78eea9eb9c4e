#!/usr/bin/env python3
"""Small Llama-family models with random weights, for checking the local
engine against PyTorch: writes a GGUF file and is also the reference forward
pass (tests/engine/check_logits.py imports it).

Usage: tools/make_test_model.py OUT.gguf [--arch llama|qwen2] [--type f32|f16|bf16|q8_0] [--seed N] [--tokenizer]

With --tokenizer the file also holds a byte-level tokenizer (one token per
byte, <|im_start|>, <|im_end|>) and a ChatML template, so the gateway can run
it as engine = "local": it streams random bytes, a test model, not a chatbot.
"""
import argparse
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as g  # noqa: E402

SHAPE = dict(dim=64, layers=2, heads=4, kv_heads=2, ffn=160, vocab=320, context=4096, eps=1e-5, rope_base=10000.0)
# Qwen2-0.5B's shape, for the engine benchmark (random weights).
SHAPE_05B = dict(dim=896, layers=24, heads=14, kv_heads=2, ffn=4864, vocab=151936, context=32768, eps=1e-6,
                 rope_base=1000000.0)


def make_weights(arch, seed, shape=SHAPE):
    gen = torch.Generator().manual_seed(seed)
    d, kv = shape["dim"], shape["kv_heads"] * (shape["dim"] // shape["heads"])

    def rnd(*s, scale=0.08):
        return torch.randn(*s, generator=gen, dtype=torch.float32) * scale

    w = {"token_embd.weight": rnd(shape["vocab"], d, scale=0.5), "output_norm.weight": 1 + rnd(d, scale=0.1)}
    if arch == "llama":
        w["output.weight"] = rnd(shape["vocab"], d, scale=0.2)  # qwen2 here ties it to the embeddings
    for l in range(shape["layers"]):
        p = "blk.%d." % l
        w[p + "attn_norm.weight"] = 1 + rnd(d, scale=0.1)
        w[p + "ffn_norm.weight"] = 1 + rnd(d, scale=0.1)
        w[p + "attn_q.weight"] = rnd(d, d)
        w[p + "attn_k.weight"] = rnd(kv, d)
        w[p + "attn_v.weight"] = rnd(kv, d)
        w[p + "attn_output.weight"] = rnd(d, d)
        w[p + "ffn_gate.weight"] = rnd(shape["ffn"], d)
        w[p + "ffn_up.weight"] = rnd(shape["ffn"], d)
        w[p + "ffn_down.weight"] = rnd(d, shape["ffn"])
        if arch == "qwen2":
            w[p + "attn_q.bias"] = rnd(d, scale=0.1)
            w[p + "attn_k.bias"] = rnd(kv, scale=0.1)
            w[p + "attn_v.bias"] = rnd(kv, scale=0.1)
    return w


def to_bf16_bytes(t):
    bits = t.contiguous().view(torch.int32)
    # round to nearest even, as torch's bfloat16 conversion does
    return t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()


def to_q8_0(t):
    """Q8_0 blocks of 32: an f16 scale (max|x|/127) and 32 int8; returns
    (bytes, dequantized tensor)."""
    import numpy as np
    rows = t.reshape(-1, 32)
    amax = rows.abs().max(dim=1).values
    d = (amax / 127.0).to(torch.float16)
    df = d.to(torch.float32)
    inv = torch.where(df > 0, 1.0 / df, torch.zeros_like(df))
    q = torch.round(rows * inv[:, None]).clamp(-127, 127).to(torch.int8)
    blocks = np.empty((rows.shape[0], 34), dtype=np.uint8)
    blocks[:, :2] = d.view(torch.int16).numpy().view(np.uint8).reshape(-1, 2)
    blocks[:, 2:] = q.numpy().view(np.uint8)
    return blocks.tobytes(), (q.to(torch.float32) * df[:, None]).reshape(t.shape)


def byte_tokenizer(w, vocab):
    """GPT-2 style byte tokens 0-255, then ChatML's special tokens."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    mapping, n = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + n)
            n += 1
    tokens = [mapping[b] for b in range(256)] + ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    types = [1] * 256 + [3, 3, 3]
    while len(tokens) < vocab:
        tokens.append("[PAD%d]" % len(tokens))
        types.append(5)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2")
    w.add_array("tokenizer.ggml.tokens", g.STRING, tokens)
    w.add_array("tokenizer.ggml.token_type", g.INT32, types)
    w.add_array("tokenizer.ggml.merges", g.STRING, [])
    w.add("tokenizer.ggml.eos_token_id", g.UINT32, 257)
    w.add_string("tokenizer.chat_template",
                 "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
                 "{% endfor %}<|im_start|>assistant\n")


def write(path, arch, wtype, seed, shape=SHAPE, tokenizer=False):
    """Writes a random model; returns the weights as the file holds them (dequantized)."""
    return write_weights(path, arch, wtype, make_weights(arch, seed, shape), shape, "sluice-test-%s-%s" % (arch, wtype),
                         (lambda w: byte_tokenizer(w, shape["vocab"])) if tokenizer else None)


def write_weights(path, arch, wtype, weights, shape, name, tokenizer=None, metadata=None):
    """Writes `weights` (PyTorch names: token_embd.weight, blk.N.attn_q.weight,
    ...) as a GGUF model of `shape`; matrices in `wtype`, vectors in F32.
    tokenizer(writer) adds the tokenizer metadata; metadata: more strings.
    Returns the weights as the file holds them (dequantized)."""
    w = g.GGUFWriter()
    if tokenizer:
        tokenizer(w)
    w.add_string("general.architecture", arch)
    w.add_string("general.name", name)
    for key, value in (metadata or {}).items():
        w.add_string(key, value)
    w.add("%s.embedding_length" % arch, g.UINT32, shape["dim"])
    w.add("%s.block_count" % arch, g.UINT32, shape["layers"])
    w.add("%s.attention.head_count" % arch, g.UINT32, shape["heads"])
    w.add("%s.attention.head_count_kv" % arch, g.UINT32, shape["kv_heads"])
    w.add("%s.feed_forward_length" % arch, g.UINT32, shape["ffn"])
    w.add("%s.context_length" % arch, g.UINT32, shape["context"])
    w.add("%s.attention.layer_norm_rms_epsilon" % arch, g.FLOAT32, shape["eps"])
    w.add("%s.rope.freq_base" % arch, g.FLOAT32, shape["rope_base"])
    stored = {}
    for name, t in weights.items():
        dims = list(reversed(t.shape))  # ggml order
        if t.dim() == 1 or wtype == "f32":
            w.add_tensor(name, dims, g.F32, t.contiguous().numpy().tobytes())
            stored[name] = t
        elif wtype == "f16":
            w.add_tensor(name, dims, g.F16, t.to(torch.float16).numpy().tobytes())
            stored[name] = t.to(torch.float16).to(torch.float32)
        elif wtype == "bf16":
            w.add_tensor(name, dims, g.BF16, to_bf16_bytes(t))
            stored[name] = t.to(torch.bfloat16).to(torch.float32)
        else:
            data, deq = to_q8_0(t)
            w.add_tensor(name, dims, g.Q8_0, data)
            stored[name] = deq
    w.write(path)
    return stored


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, base, halves):
    """x: (T, H, D); pos: (T,)"""
    D = x.shape[-1]
    i = torch.arange(D // 2, dtype=torch.float64)
    theta = pos[:, None].to(torch.float64) * base ** (-2.0 * i / D)
    c, s = torch.cos(theta)[:, None, :], torch.sin(theta)[:, None, :]
    if halves:
        a, b = x[..., : D // 2], x[..., D // 2:]
        return torch.cat([a * c - b * s, a * s + b * c], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)


def quantize_activations(x):
    """What the engine does to the activations of a Q8_0 matmul: blocks of 32
    become int8 with a float32 scale max|x|/127, rounded half to even in
    float32. Returns them dequantized, in x's type."""
    x32 = x.to(torch.float32).reshape(-1, 32)
    d = x32.abs().max(dim=1, keepdim=True).values / 127.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    q = torch.round(x32 * inv)
    return (q.to(x.dtype) * d.to(x.dtype)).reshape(x.shape)


def round_to_bf16(x):
    """What the engine's AVX-512 path does to the activations of a BF16
    matmul: float32 rounded to bfloat16, to nearest even."""
    return x.to(torch.float32).to(torch.bfloat16).to(x.dtype)


def forward(weights, arch, ids, shape=SHAPE, q8_activations=False, bf16_activations=False):
    """Logits (T, vocab) for token ids, in float64. With q8_activations, every
    matmul's input is quantized as the engine does for Q8_0 weights; with
    bf16_activations, rounded to bfloat16 as its AVX-512 path does for BF16
    weights."""
    W = {k: v.to(torch.float64) for k, v in weights.items()}
    act = quantize_activations if q8_activations else round_to_bf16 if bf16_activations else (lambda t: t)
    d, H, KV = shape["dim"], shape["heads"], shape["kv_heads"]
    hd = d // H
    T = len(ids)
    pos = torch.arange(T)
    x = W["token_embd.weight"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(shape["layers"]):
        p = "blk.%d." % l
        h = rmsnorm(x, W[p + "attn_norm.weight"], shape["eps"])
        h = act(h)
        q, k, v = h @ W[p + "attn_q.weight"].T, h @ W[p + "attn_k.weight"].T, h @ W[p + "attn_v.weight"].T
        if arch == "qwen2":
            q, k, v = q + W[p + "attn_q.bias"], k + W[p + "attn_k.bias"], v + W[p + "attn_v.bias"]
        q = rope(q.view(T, H, hd), pos, shape["rope_base"], arch == "qwen2")
        k = rope(k.view(T, KV, hd), pos, shape["rope_base"], arch == "qwen2")
        v = v.view(T, KV, hd)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        att = torch.einsum("thd,shd->hts", q, k) / hd ** 0.5 + mask
        out = torch.einsum("hts,shd->thd", att.softmax(-1), v).reshape(T, d)
        x = x + act(out) @ W[p + "attn_output.weight"].T
        h = act(rmsnorm(x, W[p + "ffn_norm.weight"], shape["eps"]))
        x = x + act(torch.nn.functional.silu(h @ W[p + "ffn_gate.weight"].T) * (h @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
    out = W.get("output.weight", W["token_embd.weight"])
    return act(rmsnorm(x, W["output_norm.weight"], shape["eps"])) @ out.T


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--arch", default="llama", choices=["llama", "qwen2"])
    ap.add_argument("--type", default="f32", choices=["f32", "f16", "bf16", "q8_0"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tokenizer", action="store_true")
    ap.add_argument("--shape", default="test", choices=["test", "qwen2-0.5b"])
    ap.add_argument("--layers", type=int, default=0, help="fewer (or more) layers than the shape has")
    a = ap.parse_args()
    shape = dict(SHAPE_05B if a.shape == "qwen2-0.5b" else SHAPE)
    if a.layers > 0:
        shape["layers"] = a.layers
    write(a.out, a.arch, a.type, a.seed, shape=shape, tokenizer=a.tokenizer)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
