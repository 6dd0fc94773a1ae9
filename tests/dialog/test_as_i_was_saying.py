"""As I was saying: "continue" after an interrupt speaks the unheard remainder, not a new answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshkit import Conversation, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.core import Core
from server.app.root import Mesh
from server.dialog.resume import is_continue_request, unheard_remainder
from server.llm.scripted import DEFAULT_TEXT, ScriptedProvider
from server.rpc.channels import open_channel


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", "5", only=["tts", "core"])
    yield mesh
    await mesh.stop()


def scripted(mesh: Mesh) -> ScriptedProvider:
    core = mesh.core
    assert isinstance(core, Core) and isinstance(core.llm, ScriptedProvider)
    return core.llm


@pytest.mark.parametrize("text", ["continue", "Go on.", "Okay, go on.", "What were you saying?", "继续", "继续吧",
                                  "你刚才说到哪了？", "嗯，接着说"])
def test_continue_requests(text: str) -> None:
    assert is_continue_request(text)


@pytest.mark.parametrize("text", ["", "okay", "continue the story about dragons", "go to the park", "继续下雨吗"])
def test_not_continue_requests(text: str) -> None:
    assert not is_continue_request(text)


def test_the_remainder_starts_where_hearing_stopped() -> None:
    assert unheard_remainder("Hello! I am Pero, your desktop companion.", "Hello! I am Pero,") == \
        "your desktop companion."
    zh = "我们先看看今天的安排吧，下午三点你有一个会议。"
    assert unheard_remainder(zh, "我们先看看今天的安排吧，") == "下午三点你有一个会议。"
    assert unheard_remainder("Hello there.", "") == "Hello there."


async def answer(talk: Conversation, text: str, turn_id: str) -> list[pb.ConverseResponse]:
    talk.say(text)
    events = await talk.until("state_update", turn_id=turn_id)
    while not (events[-1].turn_id == turn_id and events[-1].state_update.state in (pb.STATE_IDLE,
                                                                                   pb.STATE_INTERRUPTED)):
        events += await talk.until("state_update", turn_id=turn_id)
    return [e for e in events if e.turn_id == turn_id]


async def test_continue_after_an_interrupt_speaks_what_was_not_heard(mesh: Mesh) -> None:
    llm = scripted(mesh)
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="saying")
        await talk.next()
        talk.say("tell me about my day")
        while not (await talk.next()).audio_chunk.clause_end:  # some of it was heard: a whole clause
            pass
        talk.interrupt()
        cut = await talk.until("assistant_final", turn_id="saying#1")
        final = cut[-1].assistant_final
        assert final.interrupted and final.heard_text and final.heard_text != final.text
        await talk.until_state(pb.STATE_INTERRUPTED)
        calls = len(llm.calls)

        resumed = await answer(talk, "Go on.", "saying#2")
        said = "".join(e.assistant_delta.text_delta for e in resumed if e.HasField("assistant_delta"))
        assert said.strip() == unheard_remainder(final.text, final.heard_text), said
        bare = final.text.replace(" ", "")  # heard + said is the whole answer: the rest, from where it stopped
        assert said and bare == final.heard_text.replace(" ", "") + said.replace(" ", "")
        assert DEFAULT_TEXT.replace(" ", "").startswith(bare)
        assert any(e.HasField("audio_chunk") for e in resumed)  # spoken
        assert len(llm.calls) == calls  # no regeneration

        again = await answer(talk, "continue", "saying#3")  # nothing left unheard: the model answers
        assert len(llm.calls) == calls + 1 and any(e.HasField("assistant_delta") for e in again)
        await talk.close()
