#!/usr/bin/env python3
"""Retrieval quality of the knowledge_base plugin's index on the demo shop's
held-out questions (eval/demo-shop.jsonl): recall@1 and @3 of the expected
passages for each Chinese tokenizer mode (character bigrams, FTS5 trigram),
by language, with and without the knowledge base's synonyms. It runs
`sluice-kb search`, the same index code the plugin uses.

Usage: bench/kb/retrieval.py [--kb build/release/bin/sluice-kb] [--folder kb/demo-shop]
                             [--questions eval/demo-shop.jsonl] [--misses]"""
import argparse
import collections
import json
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(kb, folder, tokenizer, items, synonyms=None):
    lines = "".join(json.dumps({"query": it["question"], "context": it.get("history", [])[-1:]},
                               ensure_ascii=False) + "\n" for it in items)
    out = subprocess.run([kb, "search", "--folder", folder, "--tokenizer", tokenizer, "--top-k", "3"] +
                         (["--synonyms", synonyms] if synonyms else []),
                         input=lines.encode(), capture_output=True, check=True).stdout.decode()
    return [[p["id"] for p in json.loads(l)["passages"]] for l in out.splitlines()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", default=os.path.join(root, "build/release/bin/sluice-kb"))
    ap.add_argument("--folder", default=os.path.join(root, "kb/demo-shop"))
    ap.add_argument("--questions", default=os.path.join(root, "eval/demo-shop.jsonl"))
    ap.add_argument("--misses", action="store_true", help="list the questions whose passage is not in the top 3")
    args = ap.parse_args()
    items = [json.loads(l) for l in open(args.questions, encoding="utf-8") if l.strip()]
    items = [it for it in items if it["expected_sources"]]
    print("| tokenizer | synonyms | language | questions | recall@1 | recall@3 |")
    print("|---|---|---|---:|---:|---:|")
    for tok, syn in (("bigram", None), ("bigram", "none"), ("trigram", None)):
        got = run(args.kb, args.folder, tok, items, syn)
        stats = collections.defaultdict(lambda: [0, 0, 0])
        for it, ids in zip(items, got):
            for key in (it["language"], "all"):
                s = stats[key]
                s[0] += 1
                s[1] += bool(ids[:1]) and ids[0] in it["expected_sources"]
                s[2] += any(i in it["expected_sources"] for i in ids[:3])
            if args.misses and tok == "bigram" and not syn and not any(i in it["expected_sources"] for i in ids[:3]):
                print("  miss %s: %s -> %s (want %s)" % (it["id"], it["question"], ids, it["expected_sources"]),
                      file=sys.stderr)
        for key in ("en", "zh", "all"):
            n, r1, r3 = stats[key]
            print("| %s | %s | %s | %d | %.3f | %.3f |" % (tok, "no" if syn else "yes", key, n, r1 / n, r3 / n))


if __name__ == "__main__":
    main()
