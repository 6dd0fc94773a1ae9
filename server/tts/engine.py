"""The interface every speech engine implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from server.tts.voices import Voice


class SpeechEngine(Protocol):
    """Streams PCM16 mono audio for one text segment.

    Cancellation: closing the iterator (or cancelling the task consuming it)
    must stop synthesis at once and release every resource (processes killed
    and reaped, threads told to stop).
    """

    name: str

    def supports(self, language: str) -> bool:
        """Whether this engine should speak `language` ("en", "zh", ...) when no voice is chosen."""
        ...

    def voices(self) -> Sequence[Voice]:
        """The installed voices of this engine."""
        ...

    def find_voice(self, name: str) -> Voice | None:
        """The installed voice called `name` (one of `voices()`, or a form the engine also
        accepts, such as espeak-ng's "en-us+f3"), or None."""
        ...

    def voice_for(self, language: str, voice: str = "") -> str:
        """The name of the voice this engine speaks `language` with: `voice` when it is one of
        its voices and speaks the language, else its default for the language."""
        ...

    def synthesize(self, text: str, language: str, voice: str, sample_rate_hertz: int) -> AsyncIterator[bytes]:
        """PCM16LE mono at `sample_rate_hertz`, yielded as soon as it is produced. `voice` is
        one of this engine's voices that speaks `language`, or "" for its default."""
        ...
