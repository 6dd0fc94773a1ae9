"""What a new prompt can reuse of the model's earlier work: per-session KV caches and one shared prefix.

Why: on CPU, encoding the prompt is most of the time to the first token (a
0.5B model encodes a few hundred tokens a second on two threads), so a turn
should encode only what is new since the session's last turn.

- Per session, the cache of its last prompt and answer is kept with the token
  ids it covers and the messages as the model saw them (`shown`). A new
  prompt's common token prefix with them is reused; only the rest is encoded.
- The model's view of a session is append-only (`model_view`): the turn's
  note (reply language, recalled memories; server/llm/prompt.py) rides on the
  newest user message, and the history gives that message back plain the
  next turn. Rendered plain, it would no longer match the cache from that
  message on, and the last question and answer would be re-encoded every
  turn. The view renders it as the model was shown it, so the cache covers
  everything before the new message (and the model's history is what it
  really read when it answered).
- A new session starts from a copy of a shared prefix: the KV of the fixed
  persona (the system message and its language's worked example,
  server/llm/prompt.py `fixed_prefix`; the warm-up renders both languages'),
  so turn 1 encodes only its own message, not the fixed prompt again.

Bounded: `max_sessions` caches (least recently used dropped) and `max_prefixes` prefixes.
Not thread-safe: the provider uses it from one generation at a time.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.llm.base import ChatMessage


@dataclass
class CachedPrompt:
    """A KV cache and the token ids it covers (plus, for a session, the messages they render)."""

    token_ids: list[int]
    cache: Any  # transformers DynamicCache
    shown: list[ChatMessage] = field(default_factory=list)


def model_view(shown: Sequence[ChatMessage], messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """`messages` with each earlier user message the model was shown with a note rendered as shown.

    A message is taken as shown when, at the same position, the shown one ends with a line break
    and its text (`note\\ntext`, server/llm/prompt.py); every message before it matched too. The
    newest message is always the request's own (it carries this turn's note).
    """
    view: list[ChatMessage] = []
    for i, message in enumerate(messages):
        was = shown[i] if i < len(shown) and i < len(messages) - 1 else None
        if was is not None and was != message and not _noted(was, message):
            view.extend(messages[i:])  # diverged (history trimmed or corrected): plain from here
            return view
        view.append(was or message)
    return view


def _noted(was: ChatMessage, message: ChatMessage) -> bool:
    return was.role == message.role == "user" and was.content.endswith("\n" + message.content)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PromptCaches:
    """Per-session caches (bounded, least recently used dropped) and the shared prefix new sessions copy."""

    def __init__(self, new_cache: Callable[[], Any], max_sessions: int = 4, max_prefixes: int = 4) -> None:
        self._new = new_cache
        self._sessions: OrderedDict[str, CachedPrompt] = OrderedDict()
        self._max = max_sessions
        self._prefixes: OrderedDict[tuple[int, ...], CachedPrompt] = OrderedDict()
        self._max_prefixes = max_prefixes

    def shown(self, session_id: str) -> list[ChatMessage]:
        """The messages of the session's last prompt, its answer last, as the model saw them."""
        entry = self._sessions.get(session_id) if session_id else None
        return entry.shown if entry is not None else []

    def reusable(self, session_id: str, ids: Sequence[int]) -> tuple[Any, int]:
        """A cache for prompt `ids` and how many of its first tokens that cache already holds.

        The session's own cache is taken out (cropped to the common prefix): the caller puts it
        back with `remember`. At least the last token is always left to encode (generation needs
        a new position's logits)."""
        entry = self._sessions.pop(session_id, None) if session_id else None
        own = 0 if entry is None else min(common_prefix(entry.token_ids, ids), len(ids) - 1,
                                          entry.cache.get_seq_length())
        prefix = self._shared(ids)
        shared = len(prefix.token_ids) if prefix is not None else 0
        if entry is not None and own > 0 and own >= shared:
            if excess := entry.cache.get_seq_length() - own:
                entry.cache.crop(-excess)  # transformers 5: a negative count removes that many from the end
            return entry.cache, own
        if prefix is not None:
            return copy.deepcopy(prefix.cache), shared
        return self._new(), 0

    def _shared(self, ids: Sequence[int]) -> CachedPrompt | None:
        """The longest shared prefix `ids` starts with (and goes beyond)."""
        best: CachedPrompt | None = None
        for prefix in self._prefixes.values():
            n = len(prefix.token_ids)
            if len(ids) > n and list(ids[:n]) == prefix.token_ids and (best is None or n > len(best.token_ids)):
                best = prefix
        return best

    def remember(self, session_id: str, ids: Sequence[int], cache: Any, shown: list[ChatMessage]) -> None:
        """Keep the session's cache (covering the first `cache.get_seq_length()` of `ids`) and view."""
        if not session_id:
            return
        self._sessions[session_id] = CachedPrompt(list(ids[: cache.get_seq_length()]), cache, shown)
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)

    def covers_prefix(self, prefix_ids: Sequence[int]) -> bool:
        return tuple(prefix_ids) in self._prefixes

    def share(self, prefix_ids: Sequence[int], cache: Any) -> None:
        """Keep a copy of `cache`'s first len(prefix_ids) positions as the prefix new sessions start from."""
        n = len(prefix_ids)
        if n <= 0 or cache.get_seq_length() < n:
            return
        kept = copy.deepcopy(cache)
        if excess := kept.get_seq_length() - n:
            kept.crop(-excess)
        self._prefixes[tuple(prefix_ids)] = CachedPrompt(list(prefix_ids), kept)
        while len(self._prefixes) > self._max_prefixes:
            self._prefixes.popitem(last=False)

    def clear(self) -> None:
        self._sessions.clear()
        self._prefixes.clear()
