"""An incremental BM25 index in memory, rebuilt from SQL at start.

Postings are compact arrays (doc id int64, term frequency uint16, document
generation int32) per term and scoring is vectorised with NumPy, so a million
short memories cost a few hundred MB and a query a few milliseconds. Removing
or re-adding a document bumps its generation; postings of older generations
are masked out at query time (they are garbage until the next rebuild).

Scores are normalised to [0, 1]: divided by the score of an average-length
document that contains every query term once (Σ idf), capped at 1. A document
matching the whole query scores about 1; a weak one-word overlap stays small
instead of being stretched to 1 as max-normalisation would.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import Counter
from collections.abc import Iterable

import numpy as np

from server.memory.tokenize import terms

K1 = 1.2
B = 0.75


class LexicalIndex:
    """BM25 over `tokenize.terms`; thread-safe (one lock; every call is short)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[str, array[int]] = {}
        self._tfs: dict[str, array[int]] = {}
        self._gens: dict[str, array[int]] = {}
        self._doc_len = np.zeros(1024, dtype=np.float32)  # by doc id; 0 = absent
        self._doc_gen = np.zeros(1024, dtype=np.int32)  # by doc id; postings of other generations are stale
        self._docs = 0
        self._total_len = 0.0

    @property
    def documents(self) -> int:
        return self._docs

    @property
    def term_count(self) -> int:
        return len(self._ids)

    def add_many(self, docs: Iterable[tuple[int, str]]) -> None:
        with self._lock:
            for doc_id, text in docs:
                self._add(doc_id, text)

    def add(self, doc_id: int, text: str) -> None:
        with self._lock:
            self._add(doc_id, text)

    def _add(self, doc_id: int, text: str) -> None:
        self._remove(doc_id)
        counts = Counter(terms(text))
        length = float(sum(counts.values()))
        if length == 0:
            return
        if doc_id >= len(self._doc_len):
            size = max(doc_id + 1, 2 * len(self._doc_len))
            self._doc_len = np.concatenate([self._doc_len, np.zeros(size - len(self._doc_len), np.float32)])
            self._doc_gen = np.concatenate([self._doc_gen, np.zeros(size - len(self._doc_gen), np.int32)])
        self._doc_gen[doc_id] += 1
        gen = int(self._doc_gen[doc_id])
        for term, tf in counts.items():
            ids = self._ids.get(term)
            if ids is None:
                ids = self._ids[term] = array("q")
                self._tfs[term] = array("H")
                self._gens[term] = array("i")
            ids.append(doc_id)
            self._tfs[term].append(min(tf, 65535))
            self._gens[term].append(gen)
        self._doc_len[doc_id] = length
        self._docs += 1
        self._total_len += length

    def remove(self, doc_id: int) -> None:
        with self._lock:
            self._remove(doc_id)

    def _remove(self, doc_id: int) -> None:
        if doc_id < len(self._doc_len) and self._doc_len[doc_id] > 0:
            self._total_len -= float(self._doc_len[doc_id])
            self._doc_len[doc_id] = 0.0
            self._doc_gen[doc_id] += 1
            self._docs -= 1

    def search(self, query: str, k: int, max_df_fraction: float = 0.2) -> list[tuple[int, float]]:
        """Top `k` (doc id, normalised score). Terms in more than `max_df_fraction`
        of the documents are skipped when the query has rarer ones (they rank nothing)."""
        scored = self._score(terms(query), None, max_df_fraction)
        if scored is None:
            return []
        ids, scores = scored
        if len(ids) > k:
            top = np.argpartition(-scores, k)[:k]
            ids, scores = ids[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return [(int(ids[i]), float(scores[i])) for i in order if scores[i] > 0]

    def score(self, query: str, doc_ids: list[int]) -> dict[int, float]:
        """Normalised scores of the given documents (absent ones score 0)."""
        scored = self._score(terms(query), np.asarray(doc_ids, dtype=np.int64), 1.0)
        if scored is None:
            return {}
        return {int(i): float(s) for i, s in zip(*scored, strict=True)}

    def _score(
        self, query_terms: list[str], only: np.ndarray | None, max_df_fraction: float
    ) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            if self._docs == 0 or not query_terms:
                return None
            n = self._docs
            avgdl = self._total_len / n
            present = [t for t in dict.fromkeys(query_terms) if t in self._ids]
            if not present:
                return None
            dfs = {t: len(self._ids[t]) for t in present}
            best_possible = sum(self._idf(dfs[t], n) for t in dict.fromkeys(query_terms) if t in dfs) or 1.0
            rare = [t for t in present if dfs[t] <= max_df_fraction * n]
            used = rare or present
            all_ids: list[np.ndarray] = []
            all_scores: list[np.ndarray] = []
            for term in used:
                ids = np.frombuffer(self._ids[term], dtype=np.int64).copy()
                tfs = np.frombuffer(self._tfs[term], dtype=np.uint16).astype(np.float32)
                gens = np.frombuffer(self._gens[term], dtype=np.int32).copy()
                if only is not None:
                    keep = np.isin(ids, only)
                    ids, tfs, gens = ids[keep], tfs[keep], gens[keep]
                lens = self._doc_len[ids]
                alive = (lens > 0) & (gens == self._doc_gen[ids])
                ids, tfs, lens = ids[alive], tfs[alive], lens[alive]
                idf = self._idf(dfs[term], n)
                all_ids.append(ids)
                all_scores.append(idf * tfs * (K1 + 1) / (tfs + K1 * (1 - B + B * lens / avgdl)))
        if not all_ids:
            return None
        ids = np.concatenate(all_ids)
        scores = np.concatenate(all_scores)
        if len(ids) == 0:
            return None
        uniq, inverse = np.unique(ids, return_inverse=True)
        totals = np.bincount(inverse, weights=scores).astype(np.float32) / np.float32(best_possible)
        return uniq, np.minimum(totals, 1.0)

    @staticmethod
    def _idf(df: int, n: int) -> float:
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))
