"""Splitting mixed zh/en text into language runs and clauses (pure functions, no models)."""

from __future__ import annotations

from server.tts.language import LanguageRun, split_clauses, split_language_runs

MIXED = "我喜欢用 Python 写代码。It is fun, isn't it? 对吧！"


def test_mixed_text_splits_into_language_runs() -> None:
    assert split_language_runs(MIXED) == [
        LanguageRun("zh", "我喜欢用"), LanguageRun("en", "Python"), LanguageRun("zh", "写代码。"),
        LanguageRun("en", "It is fun, isn't it?"), LanguageRun("zh", "对吧！")]
    assert split_language_runs("我有3个苹果，3.5元。") == [LanguageRun("zh", "我有3个苹果，3.5元。")]
    assert split_language_runs("Hello, 你好") == [LanguageRun("en", "Hello,"), LanguageRun("zh", "你好")]
    assert split_language_runs("Guten Tag! 你好", "de-DE")[0] == LanguageRun("de", "Guten Tag!")
    assert split_language_runs("  ...  ") == []


def test_clauses_keep_punctuation_and_merge_fragments() -> None:
    assert split_clauses("好，我们走吧。今天是3.5号，天气很好！") == ["好，我们走吧。", "今天是3.5号，", "天气很好！"]
    assert split_clauses("Hello there, it is 3.5 degrees outside. Stay warm.") == [
        "Hello there,", "it is 3.5 degrees outside.", "Stay warm."]
    assert split_clauses("Hi, you. Ok.") == ["Hi, you. Ok."]  # short pieces never stand alone


def test_espeak_speaks_each_run_with_a_voice_of_its_language() -> None:
    from server.tts.espeak import EspeakEngine

    espeak = EspeakEngine()
    assert [espeak.voice_for(lang) for lang in ("en", "zh", "de", "ja", "xx")] == ["en-us", "cmn", "de", "ja", "en-us"]
    assert espeak.voice_for("en", "en-gb") == "en-gb"  # the configured voice, where it fits
    assert espeak.voice_for("zh", "en-gb") == "cmn"  # not for a Mandarin run
