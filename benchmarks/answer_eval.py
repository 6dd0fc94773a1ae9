"""Do the answers make sense? The evaluation set, run against the real local model through the real mesh.

An in-process mesh (memory + core, as `peromesh serve` wires them; text only)
answers the conversations of benchmarks/data/answer_eval.jsonl over gRPC
Converse: identity, small talk, follow-ups that need the history, questions
that need a memory, reminders (the deterministic confirmations). The facts
the memory questions need are added first through the real MemoryService
(AddMemory), so they reach the prompt by real recall, among the other facts.

Rule-based checks on each conversation's last answer (a check that does not
apply to an item is not counted):

- language: a Chinese question gets a mostly Chinese answer (≥ 50% of its
  letters, names such as Pero not counted), an English one no Chinese character;
- no_echo: the answer neither starts by repeating the user's message nor
  recites the prompt's fixed words (a 7-word run of the system prompt or
  note, an 8-character run of their Chinese, or the note's markers);
- identity: never "I'm Qwen/the user/a human…"; identity questions name Pero;
- addressed: the answer talks to the user, not about "the user" (用户);
- facts: the named fact (from history or memory) is in the answer;
- attribution: the remembered fact is not claimed in the first person ("my
  sister…") or pinned on "the AI";
- spacing: Chinese characters are never separated by a space.

`--prompt old` answers with the previous prompt (kept below, verbatim) by
swapping the turn loop's `build_messages` for it: the same mesh, the same
model, only the prompt differs. Greedy decoding by default, so two runs see
the same text and the before/after difference is the prompt's, not chance.

Usage: .venv/bin/python benchmarks/answer_eval.py --prompt new|old
           [--data-dir /tmp/peromesh-eval] [--model qwen] [--temperature 0] [--max-new-tokens 60] [--out FILE]
       .venv/bin/python benchmarks/answer_eval.py --prompt old|new --rescore FILE   (new checks, old answers)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from meshkit import Conversation, start_test_mesh  # noqa: E402

from peromesh.dialog.v1 import dialog_service_pb2 as dialog_pb  # noqa: E402
from peromesh.memory.v1 import memory_service_pb2 as mem_pb  # noqa: E402
from peromesh.memory.v1 import memory_service_pb2_grpc as mem_grpc  # noqa: E402
from server.dialog import turn as turn_module  # noqa: E402
from server.llm import prompt as new_prompt  # noqa: E402
from server.llm.base import ChatMessage  # noqa: E402
from server.llm.model_store import prepare_model  # noqa: E402
from server.rpc.channels import open_channel  # noqa: E402

DATA = Path(__file__).parent / "data" / "answer_eval.jsonl"
CHECKS = ("language", "no_echo", "identity", "addressed", "facts", "attribution", "spacing")

# ---------------------------------------------------------------- the previous prompt, verbatim

OLD_SYSTEM_PROMPT = (
    "You are Pero, a warm, concise AI companion living on the user's desktop and phone. "
    "Answer in the user's language. Keep spoken answers short: two to four sentences."
)
OLD_NOTE = "(What you remember that may help:"


def old_build_messages(history: Sequence[ChatMessage], user_text: str, memories: Sequence[str] = (),
                       system_prompt: str = OLD_SYSTEM_PROMPT) -> list[ChatMessage]:
    content = user_text
    if memories:
        recalled = "\n".join(f"- {m}" for m in memories)
        content = f"{OLD_NOTE}\n{recalled})\n{user_text}"
    return [ChatMessage("system", system_prompt), *history, ChatMessage("user", content)]


def prompt_words(which: str) -> list[str]:
    """The fixed words of a prompt: what an answer must not recite."""
    if which == "old":
        return [OLD_SYSTEM_PROMPT, OLD_NOTE]
    p = new_prompt
    return [p.SYSTEM_PROMPT, *p.NOTE_LANGUAGE.values(), *p.NOTE_MEMORIES.values(), *p.EXAMPLE_ANSWER.values(),
            *p.EXAMPLE_MEMORY.values()]


# ---------------------------------------------------------------- the checks

_CJK = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_NAMES = re.compile(r"PeroMesh|Pero|\bAI\b")  # names are not a language: "我是 Pero，一个AI助手" is Chinese
_CJK_GAP = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]\s+[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")
_MARKERS = ("Reply in English", "用中文回答", "told you before", "I told you", "告诉过你", "What you remember",
            "[", "［")  # the notes' words, this prompt's and the previous ones
THIRD_PERSON = ("the user", "用户")  # Pero talks to the user, not about them
IDENTITY_BREAKS = ("qwen", "alibaba", "openai", "chatgpt", "i'm a user", "i am a user", "i'm the user",
                   "i am the user", "i'm a human", "i am a human", "阿里", "通义", "千问", "我是用户", "我是人类")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _runs(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.lower())


def echoes(answer: str, user_text: str, fixed: Sequence[str]) -> bool:
    """True when the answer repeats the user's message at its start, or recites the prompt's fixed words."""
    said, heard = _compact(answer), _compact(user_text)
    if len(heard) >= 6 and said.startswith(heard[: min(len(heard), 24)]):
        return True
    if any(marker in answer for marker in _MARKERS):
        return True
    answer_runs = _runs(_words(answer), 7)
    for text in fixed:
        if answer_runs & _runs(_words(text), 7):
            return True
        chinese = "".join(_CJK.findall(text))
        if any(chinese[i:i + 8] in answer for i in range(len(chinese) - 7)):
            return True
    return False


def check(item: dict[str, Any], answer: str, fixed: Sequence[str]) -> dict[str, bool]:
    """Each applicable check's verdict on the conversation's last answer."""
    lower = answer.lower()
    cjk, latin = len(_CJK.findall(answer)), len(_LATIN.findall(_NAMES.sub("", answer)))
    results = {
        "language": cjk >= 0.5 * max(1, cjk + latin) if item["lang"] == "zh" else cjk == 0,
        "no_echo": not echoes(answer, item["turns"][-1], fixed),
        "identity": not any(b in lower for b in IDENTITY_BREAKS) and (not item.get("identity") or "pero" in lower),
        "addressed": not any(t in lower for t in THIRD_PERSON),
    }
    if item.get("expect"):
        results["facts"] = any(e.lower() in lower for e in item["expect"])
    if item.get("forbid"):
        results["attribution"] = not any(f.lower() in lower for f in item["forbid"])
    if item["lang"] == "zh":
        results["spacing"] = not _CJK_GAP.search(answer)
    return results


# ---------------------------------------------------------------- running the set

async def ask(channel: Any, session: str, turns: Sequence[str]) -> tuple[list[str], list[float]]:
    """Every answer of one conversation (its own session), and each turn's first-delta time."""
    talk = Conversation(channel)
    talk.config(session_id=session, text_only=True)
    answers, firsts = [], []
    try:
        for text in turns:
            started = time.perf_counter()
            talk.say(text)
            first = 0.0
            while True:
                event = await talk.next(timeout=300)
                kind = event.WhichOneof("event")
                if kind == "assistant_delta" and not first:
                    first = time.perf_counter() - started
                if kind == "assistant_final":
                    answers.append(event.assistant_final.text)
                    firsts.append(first)
                    break
                if kind == "error":
                    raise RuntimeError(f"{session}: {event.error.message}")
            await talk.until_state(dialog_pb.STATE_IDLE, timeout=60)  # the turn is over before the next one
    finally:
        await talk.close()
    return answers, firsts


async def remember(address: str, token: str, facts: Sequence[str]) -> None:
    async with open_channel(address, token) as channel:
        stub = mem_grpc.MemoryServiceStub(channel)
        for fact in facts:
            await stub.AddMemory(mem_pb.AddMemoryRequest(text=fact))


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rescore(args: argparse.Namespace) -> None:
    """The checks of today over the answers of an earlier run (--out file): same text, no model."""
    items = {item["id"]: item for item in load(DATA)}
    rows = load(Path(args.rescore))
    for row in rows:
        row["checks"] = check(items[row["id"]], row["answer"], prompt_words(args.prompt))
    print(json.dumps({"prompt": args.prompt, "rescored": args.rescore, "scores": scores(rows)}, ensure_ascii=False))


async def run(args: argparse.Namespace) -> None:
    items = load(DATA)[: args.limit or None]
    model_dir = prepare_model(args.model, Path(args.data_dir).expanduser())
    if args.prompt == "old":
        turn_module.build_messages = old_build_messages  # type: ignore[attr-defined]  # the one seam
    fixed = prompt_words(args.prompt)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mesh = await start_test_mesh(Path(tmp), "--llm", "local", "--model-dir", str(model_dir),
                                     "--llm-temperature", str(args.temperature),
                                     "--max-new-tokens", str(args.max_new_tokens), "--reminder-timezone", "UTC",
                                     only=["memory", "core"])
        try:
            token = mesh.token or ""
            await remember(mesh.addresses["memory"], token, [m for i in items for m in i.get("memories", [])])
            async with open_channel(mesh.addresses["core"], token) as channel:
                for item in items:
                    answers, firsts = await ask(channel, f"eval-{args.prompt}-{item['id']}", item["turns"])
                    row = {"id": item["id"], "lang": item["lang"], "kind": item["kind"], "answer": answers[-1],
                           "first_delta_s": round(firsts[-1], 2), "checks": check(item, answers[-1], fixed)}
                    rows.append(row)
                    print(json.dumps(row, ensure_ascii=False), flush=True)
        finally:
            await mesh.stop()
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    model_turns = [r["first_delta_s"] for r in rows if r["kind"] != "reminder"]  # reminders skip the model
    print(json.dumps({"prompt": args.prompt, "model": args.model, "temperature": args.temperature,
                      "first_delta_s_p50": statistics.median(model_turns) if model_turns else None,
                      "scores": scores(rows)}, ensure_ascii=False))


def scores(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """passed/applicable per check, per language and over all."""
    table: dict[str, dict[str, str]] = {}
    for name in (*CHECKS, "all"):
        table[name] = {}
        for lang in ("en", "zh", "both"):
            picked = [r for r in rows if lang in ("both", r["lang"])]
            verdicts = [all(r["checks"].values()) if name == "all" else r["checks"][name]
                        for r in picked if name == "all" or name in r["checks"]]
            table[name][lang] = f"{sum(verdicts)}/{len(verdicts)}"
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", default="new", choices=["new", "old"])
    parser.add_argument("--model", default="qwen", choices=["qwen", "smollm2"])
    parser.add_argument("--data-dir", default=str(Path.home() / ".peromesh"))
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max-new-tokens", type=int, default=60)
    parser.add_argument("--out", default="", help="also write the per-item rows (JSON lines) here")
    parser.add_argument("--limit", type=int, default=0, help="only the first N items (a smoke run)")
    parser.add_argument("--rescore", default="", help="re-check the answers of an --out file instead of running")
    args = parser.parse_args()
    if args.rescore:
        rescore(args)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
