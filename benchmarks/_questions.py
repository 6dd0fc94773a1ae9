"""The questions the latency benchmarks ask, ten per language (first_turn.py, voice_dialog.py).

Questions the model answers (no reminder or task: the deterministic parser would answer those
without the model, which is not the turn measured); short enough to speak, distinct so turn 10
of a one-language session, and each of ten spoken utterances, asks something new.
"""

from __future__ import annotations

QUESTIONS = {
    "en": [
        "Hello! What do you remember about my trip to Paris?",
        "What should I cook tonight?",
        "Can you suggest a short walk I could take after lunch?",
        "What is a good book to read on a rainy weekend?",
        "How can I sleep better when I am stressed?",
        "What should I pack for a weekend by the sea?",
        "Give me an idea for a small gift for my sister.",
        "How do I keep a basil plant alive indoors?",
        "What is a nice way to start a Monday morning?",
        "Tell me something cheerful before I go to work.",
    ],
    "zh": [
        "我明天下午有什么安排？",
        "你还记得我喜欢喝什么吗？",
        "今天晚上吃什么比较好？",
        "周末去哪里散步比较舒服？",
        "下雨天适合看什么书？",
        "压力大的时候怎么才能睡得好一点？",
        "去海边玩两天要带些什么？",
        "给妹妹送什么小礼物比较好？",
        "在家里怎么养好一盆罗勒？",
        "上班前跟我说点开心的事吧。",
    ],
}
QUESTIONS["mixed"] = [q for pair in zip(QUESTIONS["en"], QUESTIONS["zh"], strict=True) for q in pair]
