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

The ranking says which memories fit *best*, not whether any fits: "how are
you?" still has a best five. A prompt wants only memories that are about the
query, so its recall keeps those whose semantic score reaches a floor
(`relevant`, PROMPT_MIN_SEMANTIC). The floor is on `semantic`, not `final`:
`associative` is relative to this recall's strongest seed, so an unrelated
query's best hits still score up to 0.25 on it, and `final` of such hits
(0.13–0.45 on tests/memory/data/recall_none.tsv) overlaps that of right
answers to cross-language questions (from 0.15). Measured on the 200-fact
fixture (`benchmarks/recall.py --fixture`; memory README): the floor keeps
hit@5 (English, Chinese, across languages) and cuts the memories injected for
queries without a relevant fact from 5 to about 1. A relative cut (drop hits
below a fraction of the best) was measured too and left out: a cross-language
fact scores well below its same-language neighbours, so any cut that trims
relevant queries loses those answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from server.memory.config import RankWeights

# Least semantic score (cosine, ×cross_lingual_factor across languages) of a memory put into a prompt.
PROMPT_MIN_SEMANTIC = 0.24


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


class _HasSemantic(Protocol):
    @property
    def semantic(self) -> float: ...


class _Scored(Protocol):
    @property
    def scores(self) -> _HasSemantic: ...


ScoredT = TypeVar("ScoredT", bound=_Scored)


def relevant(hits: Iterable[ScoredT], min_semantic: float = PROMPT_MIN_SEMANTIC) -> list[ScoredT]:
    """The hits (engine `Recalled` or contract `RecalledMemory`) about the query, in their order."""
    return [h for h in hits if h.scores.semantic >= min_semantic]
