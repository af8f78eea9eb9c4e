#!/usr/bin/env python3
"""Trains Sluice's demo model: a small Llama-architecture chat model for the
demo shop's customer service, in English and Chinese, with its own
SentencePiece-style BPE tokenizer, written as one GGUF file that the local
engine runs. On the CPU (Debian's python3-torch) or a CUDA GPU (--device cuda,
on corpora made beforehand with --save-data); the corpus is deterministic
for a seed.

The steps:
  1. corpus.py writes the dialogues (from the order-lookup demo catalogue
     and database), tool calls and tool results included;
  2. the engine's own chat template renders them (sluice-tokenize --render),
     and a BPE vocabulary is learnt from that text;
  3. the engine's own tokenizer encodes every dialogue (sluice-tokenize), so
     training sees exactly the ids the engine will feed the model;
  4. the model learns the assistant turns (the loss covers only what the
     assistant writes, up to and including <|im_end|>);
  5. the weights go into a GGUF file (F16 matrices) with the tokenizer and a
     ChatML template.

A second stage (--init MODEL.gguf) goes on from a trained file with its
tokenizer, on a corpus with more order lookups (--order-share), where the
model must copy order numbers and tracking numbers exactly.

Usage (from the repository root; models/README.md has the exact commands):
  cmake --build --preset release --target sluice-tokenize
  /usr/bin/python3 tools/demo_model/train.py --out models/sluice-demo.gguf"""
import argparse
import collections
import heapq
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, ".."))
sys.path.insert(0, here)
import corpus  # noqa: E402
import gguf_reader  # noqa: E402
import gguf_writer as g  # noqa: E402
import make_test_model as mtm  # noqa: E402

SPECIALS = [("<unk>", 2), ("<s>", 3), ("</s>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3),
            ("<tool_call>", 4), ("</tool_call>", 4), ("<tool_response>", 4), ("</tool_response>", 4)]
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SHAPE = dict(dim=320, layers=6, heads=5, kv_heads=5, ffn=864, vocab=0, context=1024, eps=1e-5, rope_base=10000.0)
MAX_CJK_PER_PIECE = 2  # Chinese streams a character or two at a time, never a whole phrase
SPACE = "\u2581"


# ---------------------------------------------------------------- tokenizer

def words_of(text):
    """The text as SentencePiece sees it (a space before it, spaces as ▁),
    cut before every ▁: merges never cross a word, so pieces hold ▁ only
    at their start."""
    s = SPACE + text.replace(" ", SPACE)
    out, start = [], 0
    for i in range(1, len(s)):
        if s[i] == SPACE:
            out.append(s[start:i])
            start = i
    out.append(s[start:])
    return out


def train_bpe(texts, vocab_size, min_count=2):
    """BPE merges over the words of texts; digits never merge (order numbers
    and prices stay one digit per token, which a small model copies well).
    Returns the pieces in merge order, each scored by its rank."""
    counts = collections.Counter()
    chars = collections.Counter()
    for t in texts:
        for w in words_of(t):
            counts[w] += 1
    words = [list(w) for w in counts]
    freq = [counts[w] for w in counts]
    for w, f in zip(words, freq):
        for c in w:
            chars[c] += f
    alphabet = sorted(c for c, n in chars.items() if n >= min_count)
    pair_count = collections.Counter()
    where = collections.defaultdict(set)

    def cjk(s):
        return sum(1 for c in s if "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" or "\u3040" <= c <= "\u30ff")

    def mergeable(a, b):
        # Digits never merge (order numbers and prices are copied digit by
        # digit); CJK pieces stay short, so Chinese streams as smoothly as English.
        return not (a[-1].isdigit() or b[0].isdigit()) and cjk(a) + cjk(b) <= MAX_CJK_PER_PIECE

    for i, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            if mergeable(a, b):
                pair_count[(a, b)] += freq[i]
                where[(a, b)].add(i)
    heap = [(-n, p) for p, n in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    budget = vocab_size - len(alphabet) - len(SPECIALS) - 256
    while heap and len(merges) < budget:
        n, pair = heapq.heappop(heap)
        if -n != pair_count.get(pair, 0) or -n < min_count:
            continue
        merges.append(pair)
        a, b = pair
        joined = a + b
        changed = collections.Counter()
        for i in list(where[pair]):
            w = words[i]
            j = 0
            out = []
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(joined)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            if out == w:
                continue
            for x, y in zip(w, w[1:]):
                if mergeable(x, y):
                    changed[(x, y)] -= freq[i]
            for x, y in zip(out, out[1:]):
                if mergeable(x, y):
                    changed[(x, y)] += freq[i]
                    where[(x, y)].add(i)
            words[i] = out
        for p, d in changed.items():
            if d:
                pair_count[p] += d
                heapq.heappush(heap, (-pair_count[p], p))
    pieces = list(alphabet)
    seen = set(pieces)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            pieces.append(a + b)
    return alphabet, pieces


def tokenizer_writer(pieces, alphabet):
    """The GGUF tokenizer metadata: specials, the 256 byte tokens (fallback for
    characters the corpus never had), then the pieces; a piece's score is
    minus its merge rank, so the engine merges in training order."""
    tokens = [s for s, _ in SPECIALS] + ["<0x%02X>" % b for b in range(256)] + pieces
    types = [t for _, t in SPECIALS] + [6] * 256 + [1] * len(pieces)
    n_alpha = len(alphabet)
    scores = [0.0] * (len(SPECIALS) + 256) + [0.0] * n_alpha + [-float(i + 1) for i in range(len(pieces) - n_alpha)]

    def write(w):
        w.add_string("tokenizer.ggml.model", "llama")
        w.add_array("tokenizer.ggml.tokens", g.STRING, tokens)
        w.add_array("tokenizer.ggml.scores", g.FLOAT32, scores)
        w.add_array("tokenizer.ggml.token_type", g.INT32, types)
        w.add("tokenizer.ggml.unknown_token_id", g.UINT32, 0)
        w.add("tokenizer.ggml.bos_token_id", g.UINT32, 1)
        w.add("tokenizer.ggml.eos_token_id", g.UINT32, 4)  # <|im_end|> ends an answer
        w.add("tokenizer.ggml.add_bos_token", g.BOOL, False)
        w.add_string("tokenizer.chat_template", CHAT_TEMPLATE)
    return tokens, write


def tokenizer_from_gguf(meta):
    """The tokenizer of a trained file, to write again unchanged."""
    tokens = meta["tokenizer.ggml.tokens"]

    def write(w):
        w.add_string("tokenizer.ggml.model", meta["tokenizer.ggml.model"])
        w.add_array("tokenizer.ggml.tokens", g.STRING, tokens)
        w.add_array("tokenizer.ggml.scores", g.FLOAT32, meta["tokenizer.ggml.scores"])
        w.add_array("tokenizer.ggml.token_type", g.INT32, meta["tokenizer.ggml.token_type"])
        for key in ("unknown_token_id", "bos_token_id", "eos_token_id"):
            w.add("tokenizer.ggml." + key, g.UINT32, meta["tokenizer.ggml." + key])
        w.add("tokenizer.ggml.add_bos_token", g.BOOL, meta["tokenizer.ggml.add_bos_token"])
        w.add_string("tokenizer.chat_template", meta["tokenizer.chat_template"])
    return tokens, write


def write_tokenizer_only(path, write):
    w = g.GGUFWriter()
    write(w)
    w.add_string("general.architecture", "llama")
    w.write(path)


def run_tokenize(binary, model, items, render=False):
    args = [binary, model] + (["--render"] if render else [])
    out = subprocess.run(args, input=json.dumps(items, ensure_ascii=False), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("sluice-tokenize failed: " + out.stderr)
    return json.loads(out.stdout)


def chat_item(d, upto=None):
    msgs = d["messages"] if upto is None else d["messages"][:upto]
    item = {"chat": msgs}
    if d["tools"]:
        item["tools"] = [corpus.LOOKUP_ORDER_TOOL]
    return item


def encode_dialogues(binary, model, dialogues, im_end):
    """Each dialogue as (ids, mask): mask 1 where the assistant writes."""
    items, index = [], []
    for n, d in enumerate(dialogues):
        items.append(chat_item(d))
        # The loss covers the sample's own turn (train_from on); earlier
        # turns are context, as the session's history holds them.
        turns = [k for k, m in enumerate(d["messages"]) if m["role"] == "assistant" and k >= d.get("train_from", 0)]
        for k in turns:
            items.append(chat_item(d, k))
        index.append((n, len(turns)))
    ids = run_tokenize(binary, model, items)
    out, at = [], 0
    for n, turns in index:
        full = ids[at]
        mask = [0] * len(full)
        ok = True
        for prefix in ids[at + 1: at + 1 + turns]:
            if full[:len(prefix)] != prefix:
                ok = False
                break
            end = full.index(im_end, len(prefix))
            for i in range(len(prefix), end + 1):
                mask[i] = 1
        at += 1 + turns
        if ok:
            out.append((full, mask))
    return out


# -------------------------------------------------------------------- model

def rope_tables(shape, T):
    hd = shape["dim"] // shape["heads"]
    i = torch.arange(hd // 2, dtype=torch.float64)
    theta = torch.arange(T, dtype=torch.float64)[:, None] * shape["rope_base"] ** (-2.0 * i / hd)
    return torch.cos(theta).float(), torch.sin(theta).float()


def rope(x, cos, sin):
    """Llama's pairing: (x0, x1), (x2, x3), ... x: (B, T, H, D)."""
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)


class Model(torch.nn.Module):
    """Llama: RMSNorm, RoPE, grouped-query attention, SwiGLU, tied embeddings.
    Parameter names are the GGUF tensor names (dots as in llama.cpp)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        d, hd = shape["dim"], shape["dim"] // shape["heads"]
        kv = shape["kv_heads"] * hd
        self.p = torch.nn.ParameterDict()
        self.fused_attention = hasattr(F, "scaled_dot_product_attention")

        def add(name, *size, std=0.02, ones=False):
            t = torch.ones(*size) if ones else torch.randn(*size) * std
            self.p[name.replace(".", "__")] = torch.nn.Parameter(t)

        add("token_embd.weight", shape["vocab"], d)
        add("output_norm.weight", d, ones=True)
        out_std = 0.02 / math.sqrt(2 * shape["layers"])
        for l in range(shape["layers"]):
            p = "blk.%d." % l
            add(p + "attn_norm.weight", d, ones=True)
            add(p + "ffn_norm.weight", d, ones=True)
            add(p + "attn_q.weight", d, d)
            add(p + "attn_k.weight", kv, d)
            add(p + "attn_v.weight", kv, d)
            add(p + "attn_output.weight", d, d, std=out_std)
            add(p + "ffn_gate.weight", shape["ffn"], d)
            add(p + "ffn_up.weight", shape["ffn"], d)
            add(p + "ffn_down.weight", d, shape["ffn"], std=out_std)

    def w(self, name):
        return self.p[name.replace(".", "__")]

    def weights(self):
        return {k.replace("__", "."): v.detach().clone() for k, v in self.p.items()}

    def load(self, weights):
        with torch.no_grad():
            for k, v in weights.items():
                self.w(k).copy_(v.to(torch.float32))

    def forward(self, ids):
        """Logits (B, T, vocab) for ids (B, T), causal."""
        s = self.shape
        B, T = ids.shape
        H, KV, hd = s["heads"], s["kv_heads"], s["dim"] // s["heads"]
        cos, sin = (t.to(ids.device) for t in rope_tables(s, T))
        mask = torch.full((T, T), float("-inf"), device=ids.device).triu(1)
        x = self.w("token_embd.weight")[ids]
        for l in range(s["layers"]):
            p = "blk.%d." % l
            h = mtm.rmsnorm(x, self.w(p + "attn_norm.weight"), s["eps"])
            q = rope((h @ self.w(p + "attn_q.weight").T).view(B, T, H, hd), cos, sin)
            k = rope((h @ self.w(p + "attn_k.weight").T).view(B, T, KV, hd), cos, sin)
            v = (h @ self.w(p + "attn_v.weight").T).view(B, T, KV, hd)
            k = k.repeat_interleave(H // KV, dim=2)
            v = v.repeat_interleave(H // KV, dim=2)
            if self.fused_attention and ids.is_cuda:
                # The same causal softmax(q k^T / sqrt(d)) v, as one fused kernel.
                # Under autocast v is bfloat16 and RoPE left q and k in float32.
                q, k, v = (t.transpose(1, 2).to(v.dtype) for t in (q, k, v))
                att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
            else:
                scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd) + mask
                att = torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v)
            x = x + att.reshape(B, T, s["dim"]) @ self.w(p + "attn_output.weight").T
            h = mtm.rmsnorm(x, self.w(p + "ffn_norm.weight"), s["eps"])
            x = x + (F.silu(h @ self.w(p + "ffn_gate.weight").T) * (h @ self.w(p + "ffn_up.weight").T)) @ self.w(p + "ffn_down.weight").T
        return mtm.rmsnorm(x, self.w("output_norm.weight"), s["eps"]) @ self.w("token_embd.weight").T


def batches(data, tokens_per_batch, rng):
    """Dialogues of similar length together, padded; shuffled batch order."""
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    out, cur, longest = [], [], 0
    for i in order:
        n = len(data[i][0])
        if cur and max(longest, n) * (len(cur) + 1) > tokens_per_batch:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def make_batch(data, idx):
    """Padded ids and targets (-100 where there is no loss) for data[idx].
    The length is rounded up to a multiple of 64: few distinct shapes, so
    oneDNN (CPU) and the GPU kernels set up each one once (padding is causal
    and carries no loss, so it changes nothing)."""
    T = -(-max(len(data[i][0]) for i in idx) // 64) * 64
    ids = torch.zeros(len(idx), T, dtype=torch.long)
    tgt = torch.full((len(idx), T), -100, dtype=torch.long)
    for r, i in enumerate(idx):
        seq, mask = (torch.as_tensor(x) for x in data[i])
        n = len(seq)
        ids[r, :n] = seq
        tgt[r, :n - 1] = torch.where(mask[1:].bool(), seq[1:], torch.full_like(seq[1:], -100))
    return ids, tgt


# --------------------------------------------------------------------- main

def save_data(path, data, tokenizer_gguf):
    """The encoded corpus and its tokenizer in one compressed file, so that
    training can run on another machine (a GPU) without the build."""
    import numpy as np
    ids = np.concatenate([np.asarray(d[0], np.int16) for d in data])
    mask = np.packbits(np.concatenate([np.asarray(d[1], np.uint8) for d in data]))
    lengths = np.asarray([len(d[0]) for d in data], np.int32)
    with open(tokenizer_gguf, "rb") as f:
        tok = np.frombuffer(f.read(), np.uint8)
    np.savez_compressed(path, ids=ids, mask=mask, lengths=lengths, tokenizer=tok)


def load_data(path, work):
    """save_data's file: (data, path of the tokenizer GGUF written into work)."""
    import numpy as np
    z = np.load(path)
    ids, lengths = z["ids"].astype(np.int64), z["lengths"]
    mask = np.unpackbits(z["mask"])[:len(ids)]
    tok_path = os.path.join(work, "tokenizer.gguf")
    with open(tok_path, "wb") as f:
        f.write(z["tokenizer"].tobytes())
    data, at = [], 0
    for n in lengths:
        data.append((ids[at:at + n], mask[at:at + n].astype(np.int64)))
        at += n
    return data, tok_path


def corpus_data(a, work):
    """Generates, renders and encodes the corpus: (data, tokens, write)."""
    t0 = time.time()
    dialogues = corpus.generate(a.dialogues, a.seed, a.order_share, kb_bin=a.kb_bin, any_letter=a.any_letter)
    source = a.init or a.tokenizer_from
    if source:
        tokens, write = tokenizer_from_gguf(gguf_reader.read(source)[0])
    else:
        boot = os.path.join(work, "boot.gguf")
        _, write = tokenizer_writer([], [])
        write_tokenizer_only(boot, write)
        rendered = run_tokenize(a.tokenize, boot, [chat_item(d) for d in dialogues], render=True)
        texts = []
        specials = [s for s, _ in SPECIALS]
        for r in rendered:
            for s in specials:
                r = r.replace(s, "\0")
            texts += [t for t in r.split("\0") if t]
        alphabet, pieces = train_bpe(texts, a.vocab)
        tokens, write = tokenizer_writer(pieces, alphabet)
    tok_path = os.path.join(work, "tokenizer.gguf")
    write_tokenizer_only(tok_path, write)
    data = encode_dialogues(a.tokenize, tok_path, dialogues, tokens.index("<|im_end|>"))
    data = [d for d in data if len(d[0]) <= a.max_len]
    print("corpus: %d samples, %.0f s" % (len(data), time.time() - t0), flush=True)
    return data, tok_path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="models/sluice-demo.gguf")
    ap.add_argument("--tokenize", default="build/release/bin/sluice-tokenize")
    ap.add_argument("--dialogues", type=int, default=16000)
    ap.add_argument("--vocab", type=int, default=6144)
    ap.add_argument("--layers", type=int, default=SHAPE["layers"])
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--time-budget", type=float, default=0.0,
                    help="seconds of training: the schedule follows the clock and stops there (0: --steps)")
    ap.add_argument("--batch-tokens", type=int, default=6144)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--bf16", action="store_true", help="PyTorch's bfloat16 autocast: on a GPU, or a CPU with AVX-512 BF16 (without it, "
                         "as on an AVX2-only CPU, bfloat16 is emulated and about 20 times slower than float32)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--kb-bin", default="build/release/bin/sluice-kb", help="the knowledge base's search (corpus)")
    ap.add_argument("--init", help="go on from this trained GGUF file (its weights and tokenizer)")
    ap.add_argument("--tokenizer-from", help="a trained GGUF file whose tokenizer to keep (the weights start afresh)")
    ap.add_argument("--save-data", help="write the encoded corpus here (.npz) and stop")
    ap.add_argument("--data", help="train on these --save-data files (comma-separated) instead of generating a corpus")
    ap.add_argument("--order-share", type=float, default=0.22, help="chance that an exchange is an order lookup")
    ap.add_argument("--any-letter", type=float, default=0.4,
                    help="share of the order numbers that start with any letter, not A (B7777, c1234)")
    ap.add_argument("--warmup", type=int, default=60)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = random.Random(a.seed)
    t0 = time.time()
    device = torch.device(a.device)

    with tempfile.TemporaryDirectory() as work:
        if a.data:
            # Several files (comma-separated) of the same tokenizer: corpora
            # generated in parallel with different seeds.
            data = []
            for path in a.data.split(","):
                part, tok_path = load_data(path, work)
                data += part
        else:
            data, tok_path = corpus_data(a, work)
        if a.save_data:
            save_data(a.save_data, data, tok_path)
            print("wrote %s (%.1f MB)" % (a.save_data, os.path.getsize(a.save_data) / 1e6))
            return
        tokens, write = tokenizer_from_gguf(gguf_reader.read(tok_path)[0])
    init = gguf_reader.read(a.init) if a.init else None
    n_tok = sum(len(d[0]) for d in data)
    n_target = sum(int(sum(d[1])) if isinstance(d[1], list) else int(d[1].sum()) for d in data)
    print("corpus: %d samples, %d tokens (%d assistant tokens), vocabulary %d, %.0f s" %
          (len(data), n_tok, n_target, len(tokens), time.time() - t0), flush=True)

    shape = dict(SHAPE, vocab=len(tokens), layers=a.layers)
    model = Model(shape)
    if init:
        model.load(init[1])
    model.to(device)
    params = sum(p.numel() for p in model.parameters())
    print("model: %d parameters, shape %s, on %s" % (params, shape, device), flush=True)
    if device.type == "cuda" and model.fused_attention:
        # The fused attention must be the same function as the explicit one
        # that the engine's checks compare with.
        probe, _ = make_batch(data, list(range(4)))
        with torch.no_grad():
            fused = model(probe.to(device))
            model.fused_attention = False
            plain = model(probe.to(device))
            model.fused_attention = True
        gap = (fused - plain).abs().max().item()
        print("fused attention: max |difference| %.2e" % gap, flush=True)
        if gap > 1e-3:
            raise SystemExit("the fused attention differs from the explicit one")
    decay = [p for n, p in model.p.items() if p.dim() == 2]
    other = [p for n, p in model.p.items() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    warmup = a.warmup
    step = 0
    order = []
    t_train = time.time()
    seen = 0
    while True:
        # Progress in [0, 1]: by steps, or by the clock under a time budget.
        progress = (time.time() - t_train) / a.time_budget if a.time_budget else step / a.steps
        if progress >= 1:
            break
        if not order:
            order = batches(data, a.batch_tokens, rng)
        ids, tgt = make_batch(data, order.pop())
        ids, tgt = ids.to(device, non_blocking=True), tgt.to(device, non_blocking=True)
        lr = a.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in opt.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(ids)
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.view(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += ids.numel()
        if step % (100 if device.type == "cuda" else 25) == 0 or step == 1:
            print("step %d (%.0f%%) loss %.4f lr %.2e %.1f M tokens %.0f s" %
                  (step, 100 * progress, loss.item(), lr, seen / 1e6, time.time() - t0), flush=True)

    model.to("cpu")
    meta = {"general.description": "Sluice demo model: customer service for the demo shop (English, Chinese). "
                                   "Trained by tools/demo_model/train.py; see models/README.md.",
            "general.license": "MIT"}
    mtm.write_weights(a.out, "llama", "f16", model.weights(), shape, "sluice-demo", write, meta)
    print("trained %d steps, %.1f M tokens; wrote %s (%.1f MB) in %.0f s" %
          (step, seen / 1e6, a.out, os.path.getsize(a.out) / 1e6, time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
