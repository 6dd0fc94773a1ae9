"""The one interface every chat model provider implements.

`stream()` yields text deltas as the model produces them. Cancellation is the
consumer's job and the provider's promise: closing the iterator (or cancelling
the task that drives it) must stop generation within one token and release
the model for the next turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class LlmRequest:
    """What a provider needs for one turn; session_id lets it reuse per-session state."""

    messages: list[ChatMessage]
    session_id: str = ""
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)


class LlmProvider(Protocol):
    name: str

    def stream(self, request: LlmRequest) -> AsyncIterator[str]:
        """Text deltas of the answer, in order, as soon as they exist."""
        ...

    async def aclose(self) -> None:
        """Release models, threads and connections."""
        ...
