"""The one set of script and language rules (server/text/language.py)."""

from __future__ import annotations

import re

import pytest

from server.text.language import CJK, HAN, detect_language, han_count, has_han, is_han, language_of, mostly_cjk


@pytest.mark.parametrize("ch", ["我", "㐀", "\u4dbf", "\u9fff", "\uf900", "\ufaff"])
def test_han_covers_the_unified_extension_a_and_compatibility_blocks(ch: str) -> None:
    assert is_han(ch) and has_han(f"a{ch}b") and re.fullmatch(f"[{HAN}]", ch)


@pytest.mark.parametrize("ch", ["a", "1", "。", "あ", "ア", "한", "\u4dc0", "Ж"])
def test_kana_hangul_symbols_and_punctuation_are_not_han(ch: str) -> None:
    assert not is_han(ch) and not has_han(ch) and not re.fullmatch(f"[{HAN}]", ch)


def test_the_cjk_class_adds_kana_and_hangul_to_han() -> None:
    assert all(re.fullmatch(f"[{CJK}]", ch) for ch in "我あア한")
    assert not re.search(f"[{CJK}]", "hello, 123。")


def test_han_count_counts_only_han() -> None:
    assert han_count("我有3个apple。") == 3 and han_count("") == 0


@pytest.mark.parametrize(("text", "language"), [("hello", "en"), ("提醒我", "zh"), ("Pero 你好", "zh"), ("", "en"),
                                                ("こんにちは", "en")])
def test_language_of_is_zh_on_any_han(text: str, language: str) -> None:
    assert language_of(text) == language


@pytest.mark.parametrize(("text", "hint", "language"), [
    ("我喜欢用 Python 写代码。", "", "zh"),  # 7 Han against 6 Latin letters
    ("I like 蓝色 a lot", "", "en"),  # 2 Han against 8 letters
    ("蓝色 blue", "", "zh"),  # 2 Han, 4 letters: exactly half counts
    ("12345!", "", "en"),
    ("我喜欢", "en-US", "en"),  # a hint wins, reduced to its base
    ("hello", "ZH-cn", "zh"),
])
def test_detect_language_weighs_han_against_other_letters(text: str, hint: str, language: str) -> None:
    assert detect_language(text, hint) == language


def test_mostly_cjk_needs_a_third_of_the_letters() -> None:
    assert mostly_cjk("我喜欢蓝色") and mostly_cjk("我喜欢 blue") and mostly_cjk("こんにちは")
    assert mostly_cjk("안녕 hi") and not mostly_cjk("I like 蓝") and not mostly_cjk("12345")
