"""Build the model's messages for a turn: persona, history, recalled memories, the new input.

Written for the smallest model we ship (Qwen2.5-Coder-0.5B), which fails in
three ways when the prompt is loose, each answered here:

- Identity: it takes on whatever role the prompt describes most vividly (an
  earlier prompt said "living on the user's desktop and phone" and it answered
  "I'm a user on the user's desktop…"; told "the user is a human", it
  answered "I'm a human created by Alibaba Cloud"). The system message names
  it and says how to speak: to the user as "you", of itself as "I". Naming
  "the user" in a note made it talk about "the user" in the third person.
- Echo: asked "who are you?", it recites its description word for word. The
  system message holds rules, not a description worth reciting (no adjectives,
  no tagline), and tells it to use its own words, never the user's.
- Attribution: a memory is the user's own words ("my sister lives in Lyon").
  Shown as a bare line, the model cannot tell whose "my" that is and pins the
  fact on itself or on "the AI". The note says who said it, in the user's
  voice ("Earlier I told you: …"), because it rides on the user's message.
  That was not enough: asked "Where does my sister live?", it answered "My
  sister lives in Lyon", mirroring the question. One worked exchange in the
  session's language after the system message shows "my"/"I" becoming
  "your"/"you" (an A/B on the answer_eval memory items, greedy decoding: on
  the 7 both variants ran, 2 → 5 answers kept the right person; 6 of all 10
  with the example; "I'm allergic…" and "my daughter's…" still mirror).

Language: without a cue the model answered Chinese questions in English and
English ones in Chinese; naming both languages in the system message made it
worse. So every newest user message starts with a one-line note in its own
language ("[Reply in English.]", "［用中文回答。］"), followed by the memories.

The system message and its example are fixed and the note rides only on the newest user
message (history keeps the user's plain words), so the rendered prompt of
turn N, up to its newest message, is a prefix of turn N+1's once that message
is shown with its note again: the local provider's view of a session keeps
the notes as they were sent (server/llm/kv_cache.py), and its KV cache covers
all but the new message. The note goes before the question: the last thing a
0.5B model reads is what it must answer.

A recalled memory that is word for word a user message still in the history
(the session's own earlier turns, remembered by the memory server) is left
out of the note: the model reads it there already, and every note line is
encoded before the first token.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from server.llm.base import ChatMessage
from server.text.language import language_of

SYSTEM_PROMPT = (
    "You are Pero, an AI companion by PeroMesh. Talk to the user as \"you\" and about yourself as \"I\". "
    "Reply with one to three short sentences of your own, and never copy the user's words. "
    "Text in brackets at the start of a message is a note for you: follow it and do not mention it. "
    "Facts in it are the user's own words about their life and their people, not about you."
)

_DATED = re.compile(r"^\[(\d{4}-\d{2}-\d{2})\]\s*(.*)$", re.DOTALL)  # server/memory/client.py's line shape

# The note's fixed words, per language (benchmarks/answer_eval.py checks that answers do not parrot them).
NOTE_LANGUAGE = {"en": "Reply in English.", "zh": "用中文回答。"}
NOTE_MEMORIES = {"en": " Earlier I told you:", "zh": "我之前告诉过你："}
NOTE_BRACKETS = {"en": ("[", "]"), "zh": ("［", "］")}
_QUOTES = {"en": ('"', '"'), "zh": ("「", "」")}


def turn_note(memories: Sequence[str], language: str) -> str:
    """The bracketed note on the newest user message: the answer's language, then what the user said before.

    e.g. '[Reply in English. Earlier I told you:\n- (2026-11-20) "my sister lives in Lyon"]'.
    """
    opening, closing = NOTE_BRACKETS[language]
    note = NOTE_LANGUAGE[language]
    if memories:
        note += NOTE_MEMORIES[language] + "".join("\n- " + _quoted(m, language) for m in memories)
    return f"{opening}{note}{closing}"


def _quoted(memory: str, language: str) -> str:
    when, said = _dated(memory)
    left, right = _QUOTES[language]
    return f"{f'({when}) ' if when else ''}{left}{said}{right}"


def _dated(memory: str) -> tuple[str, str]:
    """('2026-11-20', 'my sister lives in Lyon') of a recalled line; ('', text) when it has no date."""
    dated = _DATED.match(memory.strip())
    return (dated.group(1), dated.group(2)) if dated else ("", memory.strip())


def _said(memory: str) -> str:
    return _dated(memory)[1]


def _not_in(history: Sequence[ChatMessage], memories: Sequence[str]) -> list[str]:
    """The memories that are not a user message of `history` (compared with whitespace collapsed)."""
    said = {_collapsed(m.content) for m in history if m.role == "user"}
    return [m for m in memories if _collapsed(_said(m)) not in said]


def _collapsed(text: str) -> str:
    return " ".join(text.split())


# One worked exchange per language, after the system message: the model answers a question about
# the user's people in the question's own words ("Where does my sister live?" -> "My sister lives
# in Lyon", the user's "my" taken as its own) whatever the note says about whose words a memory
# is; shown once how a remembered "my"/"I" becomes "your"/"you", it mostly follows. Only the
# session's language's example: an English session shown the Chinese one answered in Chinese.
# No names in it: a named brother ("Leo") came back as the user's cat and as the model's own name.
# Fixed text, so it is part of the shared prefix the local model encodes once (kv_cache.py).
EXAMPLE_MEMORY = {"en": "my brother works at a bank and I visit him on Sundays",
                  "zh": "我哥哥在医院上班，我每个周日去看他"}
EXAMPLE_QUESTION = {"en": "Where does my brother work, and when do I see him?",
                    "zh": "我哥哥在哪里上班？我什么时候去看他？"}
EXAMPLE_ANSWER = {"en": "Your brother works at a bank, and you visit him on Sundays.",
                  "zh": "你哥哥在医院上班，你每个周日去看他。"}


def example_exchange(language: str) -> list[ChatMessage]:
    return [ChatMessage("user", f"{turn_note([EXAMPLE_MEMORY[language]], language)}\n{EXAMPLE_QUESTION[language]}"),
            ChatMessage("assistant", EXAMPLE_ANSWER[language])]


def fixed_prefix(messages: Sequence[ChatMessage]) -> int:
    """How many leading messages are the fixed persona (the system message and its example):
    the part every session of that language shares."""
    if not messages or messages[0].role != "system":
        return 0
    for language in EXAMPLE_ANSWER:
        if list(messages[1:3]) == example_exchange(language):
            return 3
    return 1


def session_language(history: Sequence[ChatMessage], user_text: str) -> str:
    """The language a session started in (its example stays the same when the user switches)."""
    first = next((m.content for m in history if m.role == "user"), user_text)
    return language_of(first.rsplit("\n", 1)[-1])


def build_messages(
    history: Sequence[ChatMessage],
    user_text: str,
    memories: Sequence[str] = (),
    system_prompt: str = SYSTEM_PROMPT,
) -> list[ChatMessage]:
    note = turn_note(_not_in(history, memories), language_of(user_text))
    return [ChatMessage("system", system_prompt), *example_exchange(session_language(history, user_text)),
            *history, ChatMessage("user", f"{note}\n{user_text}")]
