"""The prompt path recalls only memories about the query (rerank.relevant, PROMPT_MIN_SEMANTIC).

Real models, a real memory server and `MemoryClient.recall_context`, as the
dialog calls it before every turn. Without the floor every query brings its
top_k, related or not ("how are you?" got the user's allergies); with it a
greeting or a general-knowledge question brings nothing, while a question about
a stored fact still finds it, in English, in Chinese and across the two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.memory.client import MemoryClient
from server.memory.embedder import Embedder
from server.memory.server import start_memory_server
from tests.memory.conftest import load_fixture, make_config

UNRELATED = ["Hey, how are you?", "Thanks, that was helpful.", "What is the capital of Australia?",
             "Explain how a transistor works.",
             "你好！", "谢谢你，说得很好。", "法国的首都是哪里？", "什么是量子计算？"]
RELATED = [  # (question, the fact it is about)
    ("When is my girl's birthday?", "My daughter Lily was born on March 5th."),
    ("Which nut gives me a bad reaction?", "I'm allergic to peanuts, they make my throat swell."),
    ("我闺女哪天过生日？", "我女儿小雨的生日是五月十二号。"),
    ("我在哪里上班？", "我在一家银行做柜员。"),
    ("莉莉是几月几号出生的？", "My daughter Lily was born on March 5th."),  # across languages
]


@pytest.fixture
async def client(data_dir: Path, embedders: dict[str, Embedder]) -> AsyncIterator[MemoryClient]:
    """A memory server holding the first 12 English and 12 Chinese facts of the recall fixture."""
    server = await start_memory_server(make_config(data_dir, f"sqlite:///{data_dir / 'memory.db'}"),
                                       embedders=embedders, allow_unauthenticated_loopback=True)
    facts = [fact for lang in ("en", "zh") for fact, _ in load_fixture(f"recall_{lang}.tsv")[:12]]
    await asyncio.gather(*(server.engine.add_memory(fact, session_id=f"s{i % 3}") for i, fact in enumerate(facts)))
    await server.engine.backfilled()
    memory = MemoryClient.connect(server.address, recall_timeout_s=30.0)
    try:
        yield memory
    finally:
        await memory.close()
        await server.stop()


async def test_an_unrelated_query_injects_no_memory(client: MemoryClient) -> None:
    for query in UNRELATED:
        assert await client.recall_context("s9", query) == [], query
    # The floor is what keeps them out: without it (and without min_score) each gets a full top 5.
    for query in UNRELATED:
        assert len(await client.recall_context("s9", query, min_score=0.0, min_semantic=0.0)) == 5, query


async def test_a_related_question_still_finds_its_fact_in_both_languages(client: MemoryClient) -> None:
    for question, fact in RELATED:
        lines = await client.recall_context("s9", question)
        assert any(line.endswith(f"] {fact}") for line in lines), (question, lines)
