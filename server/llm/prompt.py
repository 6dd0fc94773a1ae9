"""Build the model's messages for a turn: persona, history, recalled memories, the new input.

The system message is fixed and recalled memories ride on the newest user
message, so the rendered prompt of turn N is a prefix of turn N+1's up to the
last exchange: the local provider's per-session KV cache stays reusable.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.llm.base import ChatMessage

SYSTEM_PROMPT = (
    "You are Pero, a warm, concise AI companion living on the user's desktop and phone. "
    "Answer in the user's language. Keep spoken answers short: two to four sentences."
)


def build_messages(
    history: Sequence[ChatMessage],
    user_text: str,
    memories: Sequence[str] = (),
    system_prompt: str = SYSTEM_PROMPT,
) -> list[ChatMessage]:
    content = user_text
    if memories:
        recalled = "\n".join(f"- {m}" for m in memories)
        content = f"(What you remember that may help:\n{recalled})\n{user_text}"
    return [ChatMessage("system", system_prompt), *history, ChatMessage("user", content)]
