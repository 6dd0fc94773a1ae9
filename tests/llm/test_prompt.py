"""The turn prompt: who is who, memories as the user's words, the answer's language, a stable prefix."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import pytest

from server.llm.base import ChatMessage
from server.llm.prompt import SYSTEM_PROMPT, build_messages, example_exchange, fixed_prefix, turn_note
from server.text.language import language_of


def chatml(messages: Sequence[ChatMessage]) -> str:
    """The ChatML rendering both packaged models' chat templates produce (Qwen2.5, SmolLM2)."""
    return "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)


def test_a_remembered_fact_is_quoted_in_the_users_own_voice() -> None:
    """The note rides on the user's message, so its \"I\" and the memory's \"my\" are the user's."""
    messages = build_messages([], "Where does my sister live?", ["[2026-11-20] my sister lives in Lyon"])
    assert messages[-1] == ChatMessage(
        "user", '[Reply in English. Earlier I told you:\n- (2026-11-20) "my sister lives in Lyon"]\n'
                "Where does my sister live?")


def test_a_chinese_question_gets_a_chinese_note_whatever_the_memory_language() -> None:
    messages = build_messages([], "我姐姐住在哪里？", ["[2026-11-20] my sister lives in Lyon", "我姐姐是护士"])
    assert messages[-1].content == ("［用中文回答。我之前告诉过你：\n- (2026-11-20) 「my sister lives in Lyon」\n"
                                    "- 「我姐姐是护士」］\n我姐姐住在哪里？")


def test_without_memories_the_note_only_names_the_language() -> None:
    assert build_messages([], "Hi!")[-1].content == "[Reply in English.]\nHi!"
    assert turn_note([], "zh") == "［用中文回答。］"


@pytest.mark.parametrize(("text", "language"), [("hello", "en"), ("提醒我", "zh"), ("Pero 你好", "zh"), ("", "en")])
def test_language_of(text: str, language: str) -> None:
    assert language_of(text) == language


def test_the_system_message_is_fixed_and_says_who_is_who() -> None:
    plain = build_messages([], "Who are you?")[0]
    with_memories = build_messages([ChatMessage("user", "hi"), ChatMessage("assistant", "hello")], "你是谁？",
                                   ["[2026-11-20] I live in Paris"])[0]
    assert plain == with_memories == ChatMessage("system", SYSTEM_PROMPT)
    assert "You are Pero" in SYSTEM_PROMPT and 'Talk to the user as "you"' in SYSTEM_PROMPT
    assert "desktop" not in SYSTEM_PROMPT  # the old wording the model turned into "I'm a user on the user's desktop"


def test_turn_n_is_a_prefix_of_turn_n_plus_1_up_to_its_newest_message() -> None:
    """The local provider's KV cache keeps everything before turn N's user message (server/llm/local.py)."""
    questions = ["My sister lives in Lyon.", "我喜欢喝茶。", "Where does my sister live?"]
    history: list[ChatMessage] = []
    rendered: list[tuple[str, str]] = []  # (prompt, prompt without its newest message)
    for i, question in enumerate(questions):
        messages = build_messages(history, question, [f"[2026-11-2{i}] memory {i}"])
        rendered.append((chatml(messages), chatml(messages[:-1])))
        assert messages[-1].content.endswith("\n" + question)
        history += [ChatMessage("user", question), ChatMessage("assistant", f"answer {i}")]
    for (_, kept), (later, _) in pairwise(rendered):
        assert later.startswith(kept)


def test_a_memory_that_is_a_user_message_in_the_history_is_left_out_of_the_note() -> None:
    """The session's own earlier words, recalled: the model reads them in the history already."""
    history = [ChatMessage("user", "My sister  lives in Lyon."), ChatMessage("assistant", "Lovely city!")]
    memories = ["[2026-11-20] My sister lives in Lyon.", "[2026-11-19] I like tea", "Lovely city!"]
    note = build_messages(history, "Where does she live?", memories)[-1].content
    assert note == '[Reply in English. Earlier I told you:\n- (2026-11-19) "I like tea"\n- "Lovely city!"]\n' \
                   "Where does she live?"  # only the user's messages count: the answer is not the user's word
    assert build_messages(history, "Hi", memories[:1])[-1].content == "[Reply in English.]\nHi"


def test_the_session_s_language_picks_its_worked_example_and_keeps_it() -> None:
    english = build_messages([], "Where does my sister live?")
    assert english[1:3] == example_exchange("en") and fixed_prefix(english) == 3
    assert "Your brother" in english[2].content and english[-1].content.endswith("Where does my sister live?")
    chinese = build_messages([], "我姐姐住在哪里？")
    assert chinese[1:3] == example_exchange("zh") and fixed_prefix(chinese) == 3
    # the user switches language: the example (and so the cached prefix) stays the session's first one
    switched = build_messages([ChatMessage("user", "Hello"), ChatMessage("assistant", "Hi!")], "你好")
    assert switched[1:3] == example_exchange("en")
    assert fixed_prefix([ChatMessage("system", "s"), ChatMessage("user", "hi")]) == 1
