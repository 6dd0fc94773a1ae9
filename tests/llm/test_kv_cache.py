"""KV reuse bookkeeping: the append-only model view, per-session caches, the shared system prefix."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from server.llm.base import ChatMessage
from server.llm.kv_cache import PromptCaches, model_view
from server.llm.prompt import build_messages

LAYERS = 2


def filled(length: int, start: float = 0.0) -> DynamicCache:
    """A real DynamicCache holding `length` positions whose values are their position numbers."""
    cache = DynamicCache()
    positions = torch.arange(start, start + length).reshape(1, 1, length, 1)
    for layer in range(LAYERS):
        cache.update(positions.clone(), positions.clone(), layer)
    return cache


def positions(cache: DynamicCache) -> list[float]:
    return [float(x) for x in cache.layers[0].keys.flatten()]


def test_the_view_shows_past_user_messages_with_the_note_they_were_sent_with() -> None:
    first = build_messages([], "My sister lives in Lyon.", ["[2026-11-20] I like tea"])
    shown = [*first, ChatMessage("assistant", "Lyon is lovely.")]
    history = [ChatMessage("user", "My sister lives in Lyon."), ChatMessage("assistant", "Lyon is lovely.")]
    second = build_messages(history, "Where does she live?")
    view = model_view(shown, second)
    assert view[:5] == shown  # system, example, the noted question, the answer: a prefix of the cached prompt
    assert view[5] == second[5] and len(view) == 6


def test_the_view_goes_plain_from_the_first_message_that_differs() -> None:
    shown = [ChatMessage("system", "s"), ChatMessage("user", "[note]\nhi"), ChatMessage("assistant", "hello"),
             ChatMessage("user", "[note]\nmore"), ChatMessage("assistant", "sure")]
    trimmed = [ChatMessage("system", "s"), ChatMessage("user", "more"), ChatMessage("assistant", "sure"),
               ChatMessage("user", "[note]\nnew")]
    assert model_view(shown, trimmed) == trimmed  # the window moved: nothing is matched positionally
    corrected = [ChatMessage("system", "s"), ChatMessage("user", "hi"), ChatMessage("assistant", "hel"),
                 ChatMessage("user", "more"), ChatMessage("user", "[note]\nnew")]
    assert model_view(shown, corrected) == [*shown[:2], *corrected[2:]]


def test_the_newest_message_is_always_the_requests_own() -> None:
    shown = [ChatMessage("system", "s"), ChatMessage("user", "[old note]\nhi")]
    again = [ChatMessage("system", "s"), ChatMessage("user", "hi")]
    assert model_view(shown, again) == again


def test_a_session_reuses_its_common_prefix_and_leaves_the_last_token_to_encode() -> None:
    caches = PromptCaches(DynamicCache, max_sessions=2)
    caches.remember("a", [1, 2, 3, 4, 5], filled(4), [])  # the cache covers the first four ids
    cache, cached = caches.reusable("a", [1, 2, 3, 9, 9])
    assert cached == 3 and positions(cache) == [0.0, 1.0, 2.0]
    caches.remember("a", [1, 2, 3], filled(3), [])
    cache, cached = caches.reusable("a", [1, 2, 3])
    assert cached == 2 and cache.get_seq_length() == 2  # the same prompt again: one token is still encoded


def test_new_sessions_copy_the_shared_prefix_and_never_change_it() -> None:
    caches = PromptCaches(DynamicCache)
    caches.share([7, 8, 9], filled(5))
    assert caches.covers_prefix([7, 8, 9]) and not caches.covers_prefix([7, 8])
    one, cached = caches.reusable("new", [7, 8, 9, 1, 2])
    assert cached == 3 and positions(one) == [0.0, 1.0, 2.0]
    one.update(torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 2, 1), 0)  # generation appends to the copy
    two, cached = caches.reusable("other", [7, 8, 9, 5])
    assert cached == 3 and positions(two) == [0.0, 1.0, 2.0]
    fresh, cached = caches.reusable("third", [7, 8, 1])  # does not start with the prefix
    assert cached == 0 and fresh.get_seq_length() == 0


def test_each_language_s_fixed_prefix_is_shared_and_the_longest_match_wins() -> None:
    caches = PromptCaches(DynamicCache, max_prefixes=2)
    caches.share([7, 8], filled(2))  # the system message alone
    caches.share([7, 8, 1, 1], filled(4))  # with the English example
    caches.share([7, 8, 2, 2], filled(4, start=10.0))  # with the Chinese one: the oldest is dropped
    assert not caches.covers_prefix([7, 8]) and caches.covers_prefix([7, 8, 1, 1])
    english, cached = caches.reusable("en", [7, 8, 1, 1, 5])
    assert cached == 4 and positions(english) == [0.0, 1.0, 2.0, 3.0]
    chinese, cached = caches.reusable("zh", [7, 8, 2, 2, 5])
    assert cached == 4 and positions(chinese) == [10.0, 11.0, 12.0, 13.0]


def test_the_sessions_are_bounded() -> None:
    caches = PromptCaches(DynamicCache, max_sessions=2)
    for session in ("a", "b", "c"):
        caches.remember(session, [1, 2], filled(2), [ChatMessage("user", session)])
    assert caches.shown("a") == [] and caches.shown("c") == [ChatMessage("user", "c")]
