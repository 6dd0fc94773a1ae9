"""Text cleaner for memories and logs: drops binary noise, normalises spacing, masks words.

Why: turns pasted from chats carry base64 images, data URIs and control bytes that
waste embedding/LLM context and can poison an index; users also want some words
never stored verbatim. `TextCleaner(words).clean(text)` applies, in this order:

1. Control characters are removed: U+0000-0008, U+000E-001F, U+007F-0084,
   U+0086-009F, and the invisible format characters U+200B, U+200E, U+200F,
   U+202A-202E, U+2060, U+2066-2069, U+FEFF. (Tab, LF, VT, FF, CR, NEL are
   whitespace, step 4; U+200D ZWJ is kept, emoji sequences need it.)
2. data URIs are removed: `data:` (any letter case) + a media type `type/subtype`
   and/or `;param[=value]` parameters + `,` + the payload, a maximal run of
   `[A-Za-z0-9+/=%._~-]` (pattern: `reference.text.DATA_URI_PATTERN`).
3. base64 blobs are removed: a maximal run of at least `min_base64_len`
   (default 64, at least 8) characters of `[A-Za-z0-9+/]` plus up to two `=`
   that follow it, if the run holds an upper-case letter, a lower-case letter
   AND a digit (so long hex digests, words and numbers survive). Runs are cut by
   any other character, CJK included.
4. Whitespace collapses: every maximal run of whitespace (TAB LF VT FF CR, space,
   U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000)
   becomes "\\n" if it contains a line break (LF, CR, U+2028, U+2029) and
   `keep_newlines`, else one space; then leading/trailing " " and "\\n" go.
5. Sensitive words are masked in the result of step 4: every occurrence of every
   word, overlapping ones included, is found (ASCII letters match case-
   insensitively, every other character exactly; no word boundaries, so it works
   for Chinese), and every character inside the union of the matches is replaced
   by `mask` (one mask per character: "密码" -> "**"). Empty words are ignored.

No Unicode normalisation is applied (full-width forms stay). Lone surrogates
(possible in a Python str) are replaced by U+FFFD first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from server.native.backend import Backend, resolve
from server.native.reference.text import ReferenceTextCleaner

if TYPE_CHECKING:
    import _peromesh_native

DEFAULT_MIN_BASE64_LEN = 64


class TextCleaner:
    """Reusable cleaner (the word automaton is built once); thread-safe, GIL released while cleaning."""

    __slots__ = ("_raw", "backend", "keep_newlines", "mask", "min_base64_len", "sensitive_words")

    def __init__(
        self,
        sensitive_words: Iterable[str] = (),
        mask: str = "*",
        *,
        min_base64_len: int = DEFAULT_MIN_BASE64_LEN,
        keep_newlines: bool = True,
        backend: Backend | None = None,
    ) -> None:
        self.sensitive_words: tuple[str, ...] = tuple(str(w) for w in sensitive_words)
        self.mask = str(mask)
        self.min_base64_len = int(min_base64_len)
        self.keep_newlines = bool(keep_newlines)
        self.backend: Backend = resolve(backend)
        words = [_without_surrogates(w) for w in self.sensitive_words]
        mask_text = _without_surrogates(self.mask)
        self._raw: ReferenceTextCleaner | _peromesh_native.TextCleaner
        if self.backend == "native":
            import _peromesh_native

            self._raw = _peromesh_native.TextCleaner(words, mask_text, self.min_base64_len, self.keep_newlines)
        else:
            self._raw = ReferenceTextCleaner(words, mask_text, self.min_base64_len, self.keep_newlines)

    def clean(self, text: str) -> str:
        try:
            return self._raw.clean(text)
        except UnicodeEncodeError:  # a lone surrogate: not encodable as UTF-8
            return self._raw.clean(_without_surrogates(text))


def _without_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text
