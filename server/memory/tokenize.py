"""Words for the lexical channel: Latin words and CJK character bigrams.

The packaged MiniLM embedder does not understand Chinese, so Chinese memories
are found by their words. Chinese has no spaces; instead of a dictionary
segmenter, every run of CJK characters yields its overlapping character
bigrams (plus the character itself for one-character runs), which is the
classic, dictionary-free way to index CJK text and matches paraphrases that
share two-character words (生日, 喜欢, 过敏 ...). Latin text is lowercased,
split into words, lightly stemmed, and stripped of very common words.
"""

from __future__ import annotations

import re
import unicodedata

from server.text.language import CJK

_RUN = re.compile(rf"([{CJK}]+)|([0-9a-z]+(?:'[a-z]+)?)")
_STOP = frozenset((
    "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with",
    "from", "as", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "i",
    "me", "my", "mine", "you", "your", "yours", "he", "him", "his", "she", "her", "it", "its", "we",
    "us", "our", "they", "them", "their", "this", "that", "these", "those", "what", "which", "who",
    "whom", "when", "where", "why", "how", "there", "here", "have", "has", "had", "not", "no", "so",
    "than", "too", "very", "can", "could", "will", "would", "shall", "should", "may", "might",
    "must", "s", "t", "just", "about", "into", "over", "also", "any", "some", "all",
))
# One-character CJK function words that carry no topic on their own.
_CJK_STOP = frozenset("的了是在我你他她它们吗呢吧啊呀和与就都也还很")


def _stem(word: str) -> str:
    """A tiny suffix stripper (plural, -ing, -ed): enough for paraphrase overlap."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
        return word[:-1] if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsz" else word
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The index terms of `text`, in order (duplicates kept: they are term frequencies)."""
    out: list[str] = []
    for cjk, word in _RUN.findall(unicodedata.normalize("NFKC", text).lower()):
        if cjk:
            if len(cjk) == 1:
                if cjk not in _CJK_STOP:
                    out.append(cjk)
            else:
                out.extend(cjk[i : i + 2] for i in range(len(cjk) - 1))
        elif word not in _STOP:
            out.append(_stem(word))
    return out


def overlap(a: str, b: str) -> float:
    """Jaccard overlap of two texts' term sets (0 when either has none)."""
    x, y = set(terms(a)), set(terms(b))
    return len(x & y) / len(x | y) if x and y else 0.0
