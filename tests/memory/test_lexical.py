"""The lexical channel: tokenizer (words, CJK bigrams) and the incremental BM25 index."""

from __future__ import annotations

from server.memory.lexical import LexicalIndex
from server.memory.tokenize import overlap, terms
from server.text.language import mostly_cjk as is_cjk


def test_cjk_runs_become_bigrams_and_latin_words_are_stemmed() -> None:
    assert terms("我女儿的生日") == ["我女", "女儿", "儿的", "的生", "生日"]
    assert terms("My daughters' birthdays, swimming!") == ["daughter", "birthday", "swim"]
    assert terms("猫") == ["猫"] and terms("的") == []  # lone function characters carry no topic
    assert terms("去Berlin跑马拉松") == ["去", "berlin", "跑马", "马拉", "拉松"]


def test_language_detection_and_overlap() -> None:
    assert is_cjk("我喜欢蓝色") and is_cjk("我喜欢 blue") and not is_cjk("I like 蓝")
    assert not is_cjk("12345") and overlap("I love blue", "blue is what I love") == 1.0
    assert overlap("蓝色", "红色") == 0.0


def test_bm25_ranks_the_document_sharing_rare_terms() -> None:
    index = LexicalIndex()
    index.add_many([(1, "我女儿的生日是三月五号"), (2, "我最喜欢的颜色是蓝色"), (3, "我儿子的生日在冬天"),
                    (4, "I am allergic to peanuts")])
    hits = index.search("女儿生日是哪天", 3)
    assert [doc for doc, _ in hits][:2] == [1, 3]
    assert all(0 < score <= 1 for _, score in hits)
    assert index.search("peanut allergy", 3)[0][0] == 4
    assert index.search("完全无关的话", 3) == []


def test_scores_are_normalised_by_the_best_reachable_score() -> None:
    index = LexicalIndex()
    index.add_many([(1, "blue green red"), (2, "blue")])
    exact = dict(index.search("blue green red", 2))
    assert exact[1] > 0.5 > exact[2] > 0


def test_remove_and_update_mask_old_postings() -> None:
    index = LexicalIndex()
    index.add(1, "the cat named Mochi")
    index.add(2, "a dog named Rufus")
    index.remove(1)
    assert index.search("Mochi", 5) == [] and index.documents == 1
    index.add(2, "a parrot named Kiwi")  # update replaces the text
    assert index.search("Rufus", 5) == [] and index.search("parrot", 5)[0][0] == 2
    assert index.score("parrot Kiwi", [1, 2, 99]).keys() == {2}
