"""The barge-in judge: backchannels and short noises resume, real words and long speech interrupt."""

from __future__ import annotations

import pytest

from server.dialog.barge_in import BargeInJudge, BargeInSettings, Verdict, is_backchannel

SETTINGS = BargeInSettings(max_backchannel_s=1.2, resume_silence_s=0.6, silent_resume_s=2.0)


@pytest.mark.parametrize("text", ["", "Mm-hmm.", "mm hmm", "Uh-huh", "Yeah.", "Okay, okay.", "Yeah, right.",
                                  "I see.", "嗯", "嗯嗯。", "对对对", "好的", "是的，嗯", "  …  "])
def test_backchannels(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize("text", ["Stop.", "stop", "Wait", "等等", "停", "别说了", "No", "yeah but what about tomorrow",
                                  "Okay stop", "What time is it?", "对了，我想问一下"])
def test_real_words(text: str) -> None:
    assert not is_backchannel(text)


def test_a_short_quiet_utterance_resumes_and_a_long_one_interrupts() -> None:
    short = BargeInJudge(SETTINGS, onset_s=10.0)
    assert short.audio(10.5, 0.0) is Verdict.WAIT  # still talking
    assert short.audio(11.0, 0.4) is Verdict.WAIT  # 0.6 s voiced, quiet for 0.4
    assert short.audio(11.2, 0.6) is Verdict.WAIT  # its words are not decoded yet: it may be "stop"
    assert short.heard("Mm-hmm.") is Verdict.WAIT
    assert short.audio(11.3, 0.7) is Verdict.RESUME
    wordless = BargeInJudge(SETTINGS, onset_s=10.0)  # a noise: no transcript ever comes
    assert wordless.audio(11.6, 1.0) is Verdict.WAIT
    assert wordless.audio(12.6, 2.0) is Verdict.RESUME
    long = BargeInJudge(SETTINGS, onset_s=10.0)
    assert long.audio(11.1, 0.0) is Verdict.WAIT
    assert long.audio(11.3, 0.0) is Verdict.INTERRUPT  # 1.3 s of voice is a turn, whatever it says


def test_words_decide_and_a_late_final_still_can_interrupt() -> None:
    judge = BargeInJudge(SETTINGS, onset_s=0.0)
    assert judge.heard("Mm hmm") is Verdict.WAIT
    assert judge.heard("Stop") is Verdict.INTERRUPT
    late = BargeInJudge(SETTINGS, onset_s=0.0)
    assert late.audio(2.5, 2.0) is Verdict.RESUME
    assert late.ended("Stop.") is Verdict.INTERRUPT  # resumed on silence, then the words came in
    assert BargeInJudge(SETTINGS, 0.0).ended("嗯嗯") is Verdict.RESUME


@pytest.mark.parametrize("text", ["恩", "對", "是等", "好的", "M M", "Hmmm", "mhmm, okay"])
def test_whisper_near_readings_of_backchannels(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize("text", ["停", "等", "等等", "是等等", "别", "h", "mama"])
def test_one_word_interrupts_are_no_near_reading(text: str) -> None:
    assert not is_backchannel(text)


def test_a_decode_that_found_no_words_resumes_as_soon_as_a_backchannel_does() -> None:
    judge = BargeInJudge(SETTINGS, onset_s=0.0)
    assert judge.audio(1.0, 0.3) is Verdict.WAIT
    assert judge.heard("") is Verdict.WAIT  # the recognizer's empty partial of a judged utterance
    assert judge.audio(1.4, 0.7) is Verdict.RESUME  # resume_silence_s, not silent_resume_s
