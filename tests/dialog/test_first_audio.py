"""Faster first audio: a first clause without punctuation is spoken after three words, not six.

A slow model (here 150 ms a token) that does not reach a comma early would otherwise keep the
user in silence for every word the segmenter waits for. The figure printed is first audio after
first delta through the real core and TTS servers (espeak-ng).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshkit import Conversation, start_test_mesh

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.app.root import Mesh
from server.rpc.channels import open_channel

ANSWER = "I think that we could go to the park tomorrow morning if it does not rain"
DELAY_MS = 150


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(data_dir, "--scripted-delay-ms", str(DELAY_MS), "--scripted-text", ANSWER,
                                 only=["tts", "core"])
    yield mesh
    await mesh.stop()


async def test_first_audio_follows_the_third_word(mesh: Mesh) -> None:
    async with open_channel(mesh.addresses["core"], mesh.token) as channel:
        talk = Conversation(channel)
        talk.config(session_id="first-audio")
        await talk.next()
        talk.say("What shall we do?")
        events = await talk.until_state(pb.STATE_IDLE)
        await talk.close()
    kinds = [e.WhichOneof("event") for e in events]
    deltas_before_audio = kinds[: kinds.index("audio_chunk")].count("assistant_delta")
    # The cut comes with the fourth word (the third may still have been growing); six words waited
    # for seven deltas. One more delta of slack for a loaded machine's synthesis time.
    assert deltas_before_audio <= 5, kinds
    metrics = next(e.metrics for e in events if e.HasField("metrics"))
    gap = metrics.t_first_audio_ms - metrics.t_first_delta_ms
    print(f"first audio {gap:.0f} ms after first delta ({DELAY_MS} ms/token)")
    assert gap < 6 * DELAY_MS
