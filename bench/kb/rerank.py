#!/usr/bin/env python3
"""Room for a reranker over the knowledge_base plugin's BM25 candidates, on
the held-out questions that have expected passages (eval/demo-shop.jsonl):
recall@k of BM25 alone for k up to 30, then recall@1 and @3 after two
lexical rerankers of the first 30 (bench/README.md, "Knowledge-base
retrieval"):
- doc: each passage gains `beta` times the scores of its document's other
  candidates (a passage of a relevant document);
- cov: each passage gains `gamma` times the share of the question's IDF
  mass (English words, Chinese bigrams) that its title and text hold.

Usage: bench/kb/rerank.py [--kb build/release/bin/sluice-kb] [--folder kb/demo-shop]
                          [--questions eval/demo-shop.jsonl]"""
import argparse
import collections
import json
import math
import os
import re
import subprocess

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STOP = set("the a an is are do does i my me you your to of in on for and or it can what how when if with at be get "
           "this that have has will was there from by not any".split())


def units(text):
    def stem(w):
        for suffix in ("ing", "ed", "es", "s"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                return w[:-len(suffix)]
        return w
    out = [stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP]
    for run in re.findall(r"[\u4e00-\u9fff]+", text):
        out += [run[i:i + 2] for i in range(len(run) - 1)] or [run]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", default=os.path.join(root, "build/release/bin/sluice-kb"))
    ap.add_argument("--folder", default=os.path.join(root, "kb/demo-shop"))
    ap.add_argument("--questions", default=os.path.join(root, "eval/demo-shop.jsonl"))
    a = ap.parse_args()
    items = [json.loads(l) for l in open(a.questions, encoding="utf-8") if l.strip()]
    items = [it for it in items if it["expected_sources"]]
    lines = "".join(json.dumps({"query": it["question"], "context": it.get("history", [])[-1:]},
                               ensure_ascii=False) + "\n" for it in items)
    out = subprocess.run([a.kb, "search", "--folder", a.folder, "--top-k", "30"], input=lines.encode(),
                         capture_output=True, check=True).stdout.decode()
    found = [json.loads(l)["passages"] for l in out.splitlines()]
    passages = {p["id"]: p for ps in found for p in ps}
    df = collections.Counter()
    for p in passages.values():
        df.update(set(units(p["title"] + " " + p["text"])))
    idf = lambda u: math.log((len(passages) + 1) / (df[u] + 0.5))

    def recall(rank):
        r1 = r3 = 0
        for it, ps in zip(items, found):
            ids = [p["id"] for p in rank(it, ps)]
            r1 += bool(ids) and ids[0] in it["expected_sources"]
            r3 += any(i in it["expected_sources"] for i in ids[:3])
        return r1 / len(items), r3 / len(items)

    def reranker(beta, gamma):
        def rank(it, ps):
            by_doc = collections.defaultdict(float)
            for p in ps:
                by_doc[p["id"].split("#")[0]] += p["score"]
            q = set(units(it["question"]))
            total = sum(idf(u) for u in q) or 1

            def score(p):
                have = set(units(p["title"] + " " + p["text"]))
                cov = sum(idf(u) for u in q if u in have) / total
                return p["score"] + beta * (by_doc[p["id"].split("#")[0]] - p["score"]) + gamma * cov
            return sorted(ps, key=lambda p: -score(p))
        return rank

    print("| BM25 alone, k | " + " | ".join(str(k) for k in (1, 3, 5, 10, 20, 30)) + " |")
    print("|---|" + "---:|" * 6)
    cells = []
    for k in (1, 3, 5, 10, 20, 30):
        hit = sum(any(p["id"] in it["expected_sources"] for p in ps[:k]) for it, ps in zip(items, found))
        cells.append("%.3f" % (hit / len(items)))
    print("| recall@k | " + " | ".join(cells) + " |\n")
    print("| reranker | beta | gamma | recall@1 | recall@3 |")
    print("|---|---:|---:|---:|---:|")
    for name, beta, gamma in [("none", 0, 0), ("doc", 0.05, 0), ("doc", 0.1, 0), ("doc", 0.2, 0), ("cov", 0, 6),
                              ("cov", 0, 12), ("both", 0.05, 12), ("both", 0.1, 8)]:
        r1, r3 = recall(reranker(beta, gamma))
        print("| %s | %g | %g | %.3f | %.3f |" % (name, beta, gamma, r1, r3))


if __name__ == "__main__":
    main()
