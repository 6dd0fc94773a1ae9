"""Clause segmentation: speakable pieces, the first one early, nothing lost."""

from __future__ import annotations

import pytest

from server.dialog.segmenter import ClauseSegmenter
from server.llm.scripted import DEFAULT_TEXT
from server.llm.tokens import tokenize


def segment(pieces: list[str]) -> tuple[list[str], str]:
    seg = ClauseSegmenter()
    out = [c for piece in pieces for c in seg.feed(piece)]
    return out, seg.flush()


def test_sentences_and_clauses_in_both_languages() -> None:
    clauses, rest = segment(tokenize(DEFAULT_TEXT))
    assert clauses[:2] == ["Hello!", "I am Pero, your desktop companion,"]
    assert "我们先看看今天的安排吧，下午三点你有一个会议。" in clauses  # a short later comma is no cut
    assert rest == "and we will plan it together."
    assert "".join(c.replace(" ", "") for c in [*clauses, rest]) == DEFAULT_TEXT.replace(" ", "")


@pytest.mark.parametrize("text, first", [
    ("Sure, here is the plan.", "Sure, here is"),  # a comma this early is no cut; three words are
    ("Well, let me think about it, then answer.", "Well, let me"),
    ("Pi is 3.14, e is 2.71. Next", "Pi is 3.14,"),  # no cut inside the number
    ("好的，我来帮你看看。", "好的，我来帮你"),  # two characters are too short to say alone; six are
])
def test_first_clause(text: str, first: str) -> None:
    clauses, rest = segment(list(text))
    assert (clauses or [rest])[0] == first


def test_a_long_first_run_without_punctuation_is_cut_at_a_word_boundary() -> None:
    clauses, rest = segment(tokenize("I think that we could go to the park tomorrow morning if it does not rain"))
    assert clauses == ["I think that"]  # three words, said while the model goes on
    assert rest.startswith("we could go")  # later clauses wait for real pauses: nothing lost
    zh, _ = segment(list("我觉得我们明天早上可以去公园散步如果不下雨的话"))
    assert zh[0] == "我觉得我们明"


def test_the_first_word_may_still_be_growing() -> None:
    seg = ClauseSegmenter()
    assert seg.feed("I think tha") == []  # three words, but the last may become "thank"
    assert seg.feed("t") == []
    assert seg.feed(" we") == ["I think that"]


def test_later_clauses_wait_for_real_pauses() -> None:
    clauses, rest = segment(tokenize("Yes. " + "word, " * 3 + "word " * 20 + "end. More"))
    assert clauses == ["Yes.", "word, word, word, " + "word " * 19 + "word end."] or clauses[0] == "Yes."
    assert len(clauses) == 2 and rest == "More" and clauses[1].endswith("end.")


def test_very_long_runs_are_split() -> None:
    clauses, rest = segment(["x" * 10 + ". ", "a" * 400])
    assert all(len(c) <= 161 for c in clauses) and rest
