"""Text cut into model-like deltas: words, Han characters and punctuation, each with its leading space.

A reply that does not come from the model (a command's confirmation, an
announcement, "as I was saying" from history) is streamed through the same
delta, segmenter and speech path as model output, so it needs deltas shaped
like a model's. The scripted test provider emits the same deltas.
"""

from __future__ import annotations

import re

from server.text.language import HAN

_TOKEN = re.compile(rf"\s*[A-Za-z0-9']+|\s*[{HAN}]|\s*[^\sA-Za-z0-9'{HAN}]")


def tokenize(text: str) -> list[str]:
    """Split into deltas; joining them gives `text` back (trailing whitespace is the last delta)."""
    tokens = _TOKEN.findall(text)
    rest = text[len("".join(tokens)):]
    return [*tokens, rest] if rest else tokens
