"""Reference text cleaner, the oracle for rust_core's `TextCleaner`.

The rules are specified in `server.native.text` (module docstring) and
implemented here literally; rust_core/core/src/text.rs must produce the same
string for every input. The character sets below are spelled out code point by
code point (no `\\s`, no Unicode categories, no case folding) so that the two
regex engines and Unicode table versions cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Removed outright (C0/C1 controls except whitespace, and invisible format characters).
CONTROL_CHARS = (
    [chr(c) for c in range(0x00, 0x09)]
    + [chr(c) for c in range(0x0E, 0x20)]
    + [chr(c) for c in range(0x7F, 0x85)]
    + [chr(c) for c in range(0x86, 0xA0)]
    + ["\u200b", "\u200e", "\u200f"]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + ["\u2060"]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\ufeff"]
)
#: Whitespace that ends a line; a collapsed run containing one becomes "\n" (if keep_newlines).
LINE_BREAKS = "\n\r\u2028\u2029"
#: Every whitespace character; a maximal run of them collapses to one " " or "\n".
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u2028\u2029\u202f\u205f\u3000"
)
#: data URIs: `data:` + media type and/or parameters + `,` + URL-safe payload.
_TOKEN = "[A-Za-z0-9!#$&^_.+-]+"
_PARAM = f";{_TOKEN}(?:=[A-Za-z0-9!#$&^_.+%-]*)?"
DATA_URI_PATTERN = f"[Dd][Aa][Tt][Aa]:(?:{_TOKEN}/{_TOKEN}(?:{_PARAM})*|(?:{_PARAM})+),[A-Za-z0-9+/=%._~-]*"
BASE64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
MIN_BASE64_LEN_FLOOR = 8

_CONTROL_TABLE = {ord(c): None for c in CONTROL_CHARS}
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_DATA_URI = re.compile(DATA_URI_PATTERN)
_WS_RUN = re.compile("[" + re.escape(WHITESPACE) + "]+")
_UPPER = re.compile("[A-Z]")
_LOWER = re.compile("[a-z]")
_DIGIT = re.compile("[0-9]")


class ReferenceTextCleaner:
    def __init__(self, sensitive_words: Sequence[str], mask: str, min_base64_len: int, keep_newlines: bool) -> None:
        if min_base64_len < MIN_BASE64_LEN_FLOOR:
            raise ValueError(f"min_base64_len must be >= {MIN_BASE64_LEN_FLOOR}, got {min_base64_len}")
        self._words = sorted({w.translate(_ASCII_LOWER) for w in sensitive_words if w})
        self._mask = mask
        self._keep_newlines = keep_newlines
        self._base64 = re.compile(f"[A-Za-z0-9+/]{{{min_base64_len},}}={{0,2}}")

    def clean(self, text: str) -> str:
        if not text.isascii():
            text.encode("utf-8")  # lone surrogates raise UnicodeEncodeError, as in the native str conversion
        text = text.translate(_CONTROL_TABLE)
        text = _DATA_URI.sub("", text)
        text = self._base64.sub(_strip_blob, text)
        text = _WS_RUN.sub(self._collapse, text).strip(" \n")
        return self._mask_words(text)

    def _collapse(self, run: re.Match[str]) -> str:
        if self._keep_newlines and any(c in LINE_BREAKS for c in run.group(0)):
            return "\n"
        return " "

    def _mask_words(self, text: str) -> str:
        if not self._words or not text:
            return text
        folded = text.translate(_ASCII_LOWER)
        depth = [0] * (len(text) + 1)  # +1 at a match start, -1 at its end: covered where the sum > 0
        for word in self._words:
            at = folded.find(word)
            while at != -1:
                depth[at] += 1
                depth[at + len(word)] -= 1
                at = folded.find(word, at + 1)
        out: list[str] = []
        covered = 0
        for i, ch in enumerate(text):
            covered += depth[i]
            out.append(self._mask if covered > 0 else ch)
        return "".join(out)


def _strip_blob(run: re.Match[str]) -> str:
    """A run of base64 characters is a blob only if it mixes upper case, lower case and digits."""
    body = run.group(0).rstrip("=")
    if _UPPER.search(body) and _LOWER.search(body) and _DIGIT.search(body):
        return ""
    return run.group(0)
