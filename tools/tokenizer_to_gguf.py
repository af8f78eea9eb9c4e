#!/usr/bin/env python3
"""Converts a Hugging Face tokenizer (tokenizer.json, with its
tokenizer_config.json beside it) into GGUF tokenizer metadata, as llama.cpp's
converter writes it: tokenizer.ggml.{model,pre,tokens,token_type,scores,
merges,bos_token_id,...} and tokenizer.chat_template.

Usage: tools/tokenizer_to_gguf.py tokenizer.json OUT.gguf [--arch llama|qwen2]

Kinds it recognises:
- byte-level BPE (Llama 3, Qwen): tokenizer.ggml.model = "gpt2", with the
  pre-tokenizer named "llama-bpe" (digits in runs of up to 3) or "qwen2"
  (single digits);
- SentencePiece-style BPE with byte fallback and "▁" (Llama 2):
  tokenizer.ggml.model = "llama", scores from the merge order.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_writer as g  # noqa: E402

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def special_id(config, added, name):
    token = config.get(name)
    if isinstance(token, dict):
        token = token.get("content")
    return added.get(token) if token else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tokenizer_json")
    ap.add_argument("out")
    ap.add_argument("--arch", default="llama")
    args = ap.parse_args()

    t = json.load(open(args.tokenizer_json, encoding="utf-8"))
    config_path = os.path.join(os.path.dirname(args.tokenizer_json), "tokenizer_config.json")
    config = json.load(open(config_path, encoding="utf-8")) if os.path.exists(config_path) else {}
    model = t["model"]
    if model["type"] != "BPE":
        sys.exit("only BPE tokenizers are supported (got %s)" % model["type"])
    vocab = model["vocab"]
    added = {a["content"]: a["id"] for a in t.get("added_tokens", [])}
    size = max(list(vocab.values()) + list(added.values())) + 1
    tokens = ["[PAD%d]" % i for i in range(size)]
    types = [UNUSED] * size
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = NORMAL
    for a in t.get("added_tokens", []):
        tokens[a["id"]] = a["content"]
        types[a["id"]] = CONTROL if a.get("special") else USER_DEFINED

    w = g.GGUFWriter()
    w.add_string("general.architecture", args.arch)
    w.add_string("general.name", os.path.basename(os.path.dirname(os.path.dirname(args.tokenizer_json))) or "tokenizer")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    if model.get("byte_fallback"):
        # SentencePiece style: "▁" for spaces, <0xNN> byte tokens; a token's
        # score ranks it like its merge (earlier merge, higher score).
        w.add_string("tokenizer.ggml.model", "llama")
        rank = {}
        for r, m in enumerate(merges):
            a, b = m.split(" ")
            rank.setdefault(a + b, r)
        scores = [0.0] * size
        for text, i in vocab.items():
            if text == model.get("unk_token"):
                types[i] = UNKNOWN
            elif len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
                types[i] = BYTE
            elif i in added.values():
                pass
            else:
                scores[i] = -float(rank.get(text, -1) + 1) if text in rank else 0.0
        for a in t.get("added_tokens", []):
            types[a["id"]] = CONTROL if a.get("special") else USER_DEFINED
        w.add_array("tokenizer.ggml.scores", g.FLOAT32, scores)
    else:
        w.add_string("tokenizer.ggml.model", "gpt2")
        regex = json.dumps(t.get("pre_tokenizer"))
        if "\\\\p{N}{1,3}" in regex:
            pre = "llama-bpe"
        elif "\\\\p{N}|" in regex:
            pre = "qwen2"
        else:
            pre = "gpt2"
        w.add_string("tokenizer.ggml.pre", pre)
        w.add_array("tokenizer.ggml.merges", g.STRING, merges)
        if model.get("ignore_merges"):
            w.add("tokenizer.ggml.ignore_merges", g.BOOL, True)
        normalizer = t.get("normalizer") or {}
        if normalizer.get("type") == "NFC":
            w.add_string("tokenizer.ggml.normalizer", "nfc")
    w.add_array("tokenizer.ggml.tokens", g.STRING, tokens)
    w.add_array("tokenizer.ggml.token_type", g.INT32, types)
    for key, name in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"), ("padding", "pad_token")):
        i = special_id(config, {**vocab, **added}, name)
        if i is not None:
            w.add("tokenizer.ggml.%s_token_id" % key, g.UINT32, i)
    w.add("tokenizer.ggml.add_bos_token", g.BOOL, bool(config.get("add_bos_token", False)))
    w.add("tokenizer.ggml.add_eos_token", g.BOOL, bool(config.get("add_eos_token", False)))
    if isinstance(config.get("chat_template"), str):
        w.add_string("tokenizer.chat_template", config["chat_template"])
    w.write(args.out)
    print("wrote %s: %d tokens, %d merges (%s)" % (args.out, size, len(merges), tokens and "ok"))


if __name__ == "__main__":
    main()
