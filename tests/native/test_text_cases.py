"""Text cleaner rules, checked on both backends (the spec is server/native/text.py)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from server.native import Backend, TextCleaner
from server.native.reference.text import DATA_URI_PATTERN

BACKENDS: list[Backend] = ["native", "python"]
PNG = base64.b64encode(bytes(range(256)) * 2).decode()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


def test_strips_blobs_in_chinese_text(backend: Backend) -> None:
    cleaner = TextCleaner(backend=backend)
    assert cleaner.clean(f"这是图片{PNG}，好看吗？") == "这是图片，好看吗？"
    assert cleaner.clean(f"看 data:image/png;base64,{PNG} 这个") == "看 这个"
    assert cleaner.clean('<img src="data:image/svg+xml;utf8,%3Csvg%3E">') == '<img src="">'


def test_keeps_text_that_only_looks_like_base64(backend: Backend) -> None:
    cleaner = TextCleaner(backend=backend)
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # sha256, lower hex
    assert cleaner.clean(digest) == digest
    assert cleaner.clean("x" * 200) == "x" * 200
    short = PNG[:63]
    assert cleaner.clean(short) == short
    assert TextCleaner(min_base64_len=16, backend=backend).clean("key Ab3dEf7hIj1lMn5p end") == "key end"


def test_controls_and_whitespace(backend: Backend) -> None:
    cleaner = TextCleaner(backend=backend)
    assert cleaner.clean("\ufeff  你好\u200b世界\x00!\t\t hi \r\n\r\n  bye \u3000") == "你好世界! hi\nbye"
    assert TextCleaner(keep_newlines=False, backend=backend).clean("a\n\n b") == "a b"
    assert cleaner.clean("") == ""
    assert cleaner.clean(" \x00 \n") == ""


def test_masks_overlapping_words(backend: Backend) -> None:
    cleaner = TextCleaner(["密码", "码是", "Secret", "cre"], backend=backend)
    assert cleaner.clean("我的密码是1234") == "我的***1234"
    assert cleaner.clean("my SECRET and my sEcReTs") == "my ****** and my ******s"
    assert TextCleaner(["秘密"], mask="[x]", backend=backend).clean("秘密！") == "[x][x]！"
    assert TextCleaner(["", "ab"], mask="", backend=backend).clean("cabd") == "cd"


def test_lone_surrogates_become_replacement_characters(backend: Backend) -> None:
    assert TextCleaner(["\ud800x"], backend=backend).clean("a\ud800b \ud800x") == "a\ufffdb **"


def test_rejects_tiny_base64_minimum(backend: Backend) -> None:
    with pytest.raises(ValueError, match="min_base64_len"):
        TextCleaner(min_base64_len=7, backend=backend)


def test_rust_and_python_share_the_data_uri_pattern() -> None:
    """The one regex of the spec is spelled identically on both sides (the property tests catch the rest)."""
    source = (Path(__file__).resolve().parents[2] / "rust_core" / "core" / "src" / "text.rs").read_text()
    block = re.search(r"DATA_URI_PATTERN: &str = concat!\((.*?)\);", source, re.S)
    assert block is not None
    rust_pattern = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', block.group(1)))
    assert rust_pattern == DATA_URI_PATTERN
