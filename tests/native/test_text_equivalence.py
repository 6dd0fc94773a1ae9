"""Property tests: the Rust text cleaner equals the Python reference byte for byte."""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.native import TextCleaner
from server.native.reference.text import BASE64_ALPHABET, CONTROL_CHARS, WHITESPACE

FRAGMENTS = [
    "data:",
    "DATA:image/png;base64,",
    "data:text/plain;charset=utf-8,",
    "data:;base64,",
    "data:,",
    ";base64,",
    "==",
    "=",
    "密码",
    "码是",
    "我的密码是",
    "中文文本，",
    "😀",
    "👨\u200d👩",
    "Password",
    "ab",
    "AbC",
    "bcd",
    " ",
    "\n",
    "\r\n",
    "\u3000",
    "\u2028",
    "ＡＢＣ",  # full-width: not ASCII, never case-folded
    "İ",  # case-folding traps for Unicode-aware engines
    "\u212a",  # KELVIN SIGN
    "ſ",
]

base64_runs = st.one_of(
    st.text(alphabet=BASE64_ALPHABET, min_size=0, max_size=120),
    st.binary(min_size=4, max_size=90).map(lambda b: base64.b64encode(b).decode()),
)
pieces = st.one_of(
    st.sampled_from(FRAGMENTS),
    base64_runs,
    st.sampled_from(CONTROL_CHARS),
    st.text(alphabet=WHITESPACE, min_size=1, max_size=4),
    st.text(alphabet="abcdABCD01+/=-_.,:;%~!#$&^", max_size=10),
    st.text(max_size=8),  # any Unicode (no surrogates)
)
texts = st.lists(pieces, max_size=25).map("".join)
words = st.lists(
    st.one_of(
        st.sampled_from(["密码", "码是", "abc", "BCD", "b", "pass", "PASSWORD", "😀", "ab c", ""]), st.text(max_size=4)
    ),
    max_size=6,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=texts,
    sensitive=words,
    mask=st.sampled_from(["*", "", "[x]", "■"]),
    min_len=st.sampled_from([8, 12, 20, 64]),
    keep_newlines=st.booleans(),
)
def test_clean_matches(text: str, sensitive: list[str], mask: str, min_len: int, keep_newlines: bool) -> None:
    options = {"mask": mask, "min_base64_len": min_len, "keep_newlines": keep_newlines}
    native = TextCleaner(sensitive, backend="native", **options)  # type: ignore[arg-type]
    reference = TextCleaner(sensitive, backend="python", **options)  # type: ignore[arg-type]
    assert native.clean(text) == reference.clean(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(), sensitive=st.lists(st.text(max_size=3), max_size=4))
def test_clean_matches_on_arbitrary_unicode(text: str, sensitive: list[str]) -> None:
    assert TextCleaner(sensitive, backend="native").clean(text) == TextCleaner(sensitive, backend="python").clean(text)
