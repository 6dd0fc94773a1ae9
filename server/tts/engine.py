"""The interface every speech engine implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class SpeechEngine(Protocol):
    """Streams PCM16 mono audio for one text segment.

    Cancellation: closing the iterator (or cancelling the task consuming it)
    must stop synthesis at once and release every resource (processes killed
    and reaped, threads told to stop).
    """

    name: str

    def supports(self, language: str) -> bool:
        """Whether this engine should speak `language` ("en", "zh", ...)."""
        ...

    def synthesize(self, text: str, language: str, voice: str, sample_rate_hertz: int) -> AsyncIterator[bytes]:
        """PCM16LE mono at `sample_rate_hertz`, yielded as soon as it is produced."""
        ...
