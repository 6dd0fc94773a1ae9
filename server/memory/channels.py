"""Semantic channels: one embedding model plus its HNSW index each.

`auto` (the default) runs two packaged models side by side, because neither is
good at everything: MiniLM (384-d) is the stronger model for English but
useless for Chinese; the multilingual Universal Sentence Encoder (512-d)
handles Chinese and maps both languages into one space. So MiniLM stores the
non-CJK memories and use-m3 stores *every* memory (the cross-language
channel): a memory's own vector is on its row (MiniLM for English, use-m3 for
CJK text), an English memory's use-m3 vector is in `memory_vectors`. A query is
searched in every channel that *understands* it: an English question in both
(MiniLM finds English facts best, use-m3 the Chinese ones), a Chinese question
in use-m3, where it meets the English facts too (hit@5 across languages went
from 48% to the figure in the memory README). A single-model setting
(`minilm`, `use-m3`) is one channel storing everything.

The first channel is the primary: QueryVector requests are in its space.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from server.memory import store
from server.memory.embedder import AsyncEmbedder, Embedder, make_embedder
from server.memory.vector_index import VectorIndex, VectorSource
from server.text.language import mostly_cjk


@dataclass(eq=False)  # identity: channels key the per-channel vectors of a memory
class Channel:
    embedder: AsyncEmbedder
    index: VectorIndex
    stores_cjk: bool | None  # True: only CJK text; False: only non-CJK text; None: everything

    @property
    def model(self) -> str:
        return self.embedder.name

    def stores(self, text: str) -> bool:
        return self.stores_cjk is None or self.stores_cjk == mostly_cjk(text)

    def understands(self, text: str) -> bool:
        return self.embedder.understands(text)


def embedder_kinds(setting: str) -> list[tuple[str, bool | None]]:
    """(embedder kind, stores_cjk) per channel for a config setting."""
    if setting == "auto":
        return [("minilm", False), ("use-m3", None)]
    return [(setting, None)]


def build_channels(setting: str, index_dir: Path, dtype: str,
                   sessions: Callable[[], Session], embedders: dict[str, Embedder] | None = None
                   ) -> list[Channel]:
    """Channels for `setting`; `embedders` may supply already loaded models by kind (tests)."""
    channels = []
    for kind, stores_cjk in embedder_kinds(setting):
        raw = (embedders or {}).get(kind) or make_embedder(kind)
        source = _source(sessions, raw.name, raw.dim)
        folder = index_dir / re.sub(r"[^A-Za-z0-9_.-]", "_", raw.name)
        index = VectorIndex(folder, raw.dim, raw.name, dtype, source)
        channels.append(Channel(AsyncEmbedder(raw), index, stores_cjk))
    return channels


def _source(sessions: Callable[[], Session], model: str, dim: int) -> VectorSource:
    def active_ids() -> np.ndarray:
        with sessions() as s:
            return store.active_ids(s, model)

    def vectors(ids: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with sessions() as s:
            yield from store.vectors(s, model, ids, dim)

    return VectorSource(active_ids=active_ids, vectors=vectors, all_vectors=lambda: vectors(None))
