"""The rerank formula (also documented on ScoreBreakdown in the contract).

    relevance = w_sem·semantic + w_lex·lexical + w_assoc·associative
    final     = relevance · (base + w_rec·recency + w_imp·importance)
    recency   = 0.5 ** (age / half_life)

semantic is the cosine of query and memory (clipped to [0, 1]; ×0.8 across
languages, see config.cross_lingual_factor); lexical the
normalised BM25 score; associative the spreading-activation energy that reached
the memory, divided by the largest one in this recall. Relevance decides
whether a memory fits at all; recency and importance modulate it between
`base` and `base + w_rec + w_imp` (0.70–1.00 by default), so a fresh or important
memory wins a close call but never beats a clearly better match.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.memory.config import RankWeights


@dataclass
class Scores:
    semantic: float = 0.0
    lexical: float = 0.0
    associative: float = 0.0
    recency: float = 0.0
    importance: float = 0.0
    final: float = 0.0


def recency(age_s: float, half_life_s: float) -> float:
    return float(0.5 ** (max(0.0, age_s) / half_life_s))


def combine(s: Scores, w: RankWeights) -> float:
    relevance = w.semantic * max(0.0, s.semantic) + w.lexical * s.lexical + w.associative * s.associative
    return relevance * (w.base + w.recency * s.recency + w.importance * s.importance)
