"""The web console in a real headless Chromium against a real mesh: connect, stream, play, interrupt, resume."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from bridge import codec
from peromesh.gateway.v1 import envelope_pb2 as gw
from server.app.root import Mesh

from .console_kit import Problems, chromium, console_mesh, js, screenshot, wait_js

pytestmark = pytest.mark.slow


@pytest.fixture
async def mesh(data_dir: Path) -> AsyncIterator[Mesh]:
    async with console_mesh(data_dir, "--scripted-delay-ms", "15") as mesh:
        yield mesh


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


async def test_console_streams_plays_interrupts_and_resumes(mesh: Mesh, browser: Browser) -> None:
    problems = Problems()
    page = problems.watch(await browser.new_page(viewport={"width": 1180, "height": 780}))
    await page.goto(f"http://{mesh.addresses['bridge']}/?device=web-test#token=test-token")
    await page.wait_for_selector('#conn[data-state="open"]', timeout=15_000)
    assert "token" not in page.url  # the token left the address bar
    session = await js(page, "window.peromesh.client.welcome.sessionId")

    # a full turn: text streams in (several partial renderings), audio reaches the player, metrics show
    await page.fill("#input", "Hello Pero, how are you?")
    await page.click("#send")
    lengths: set[int] = set()
    async with asyncio.timeout(30):
        while not await js(page, "!!document.querySelector('.msg.assistant .meta .chip')"):
            lengths.add(await js(page, "document.querySelector('.msg.assistant .bubble')?.textContent.length ?? 0"))
            await asyncio.sleep(0.02)
    assert len([n for n in lengths if n > 0]) >= 3, lengths  # rendered progressively, not all at once
    final = await js(page, "document.querySelector('.msg.assistant .bubble').textContent")
    assert final.startswith("Hello! I am Pero") and len(final) > 100
    stats = await js(page, "window.peromesh.player.stats")
    assert stats["chunks"] > 5 and stats["samples"] > 24_000  # more than a second of speech scheduled
    chips = await js(page, "[...document.querySelectorAll('.msg.assistant .chip')].map(c => c.textContent)")
    assert any(c.startswith("first token") for c in chips) and any(c.startswith("total") for c in chips)
    await screenshot(page, "chat")

    # barge-in: stop while speaking silences at once and nothing of the turn plays afterwards
    await page.fill("#input", "Tell me more")
    await page.click("#send")
    await wait_js(page, f"window.peromesh.player.stats.chunks > {stats['chunks']} && window.peromesh.player.playing")
    await page.click("#stop")
    assert await js(page, "window.peromesh.player.playing") is False
    chunks_at_stop = await js(page, "window.peromesh.player.stats.chunks")
    await wait_js(page, "document.querySelectorAll('.msg.assistant')[1].classList.contains('interrupted')"
                        " || document.querySelector('#status').dataset.state === 'idle'")
    await asyncio.sleep(0.6)
    assert await js(page, "window.peromesh.player.stats.chunks") == chunks_at_stop
    assert await js(page, "window.peromesh.player.playing") is False
    await screenshot(page, "chat-interrupted")

    # the connection drops: the SDK reconnects by itself and resumes the same session
    await js(page, "window.peromesh.client._ws.close()")
    await page.wait_for_selector('#conn[data-state="reconnecting"]', timeout=5_000)
    await page.wait_for_selector('#conn[data-state="open"]', timeout=15_000)
    welcome = await js(page, "window.peromesh.client.welcome")
    assert welcome["resumed"] is True and welcome["sessionId"] == session
    assert problems.lines == []


async def test_sdk_wire_codec_matches_python_byte_for_byte(mesh: Mesh, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(f"http://{mesh.addresses['bridge']}/js/wire.js")
    envelope = gw.Envelope(id="e1", source_id="web", target_id="master", timestamp=1_795_293_151_302,
                           request=gw.ActionRequest(action_name="chat", params={"text": "你好", "b": "2"}))
    audio = gw.Envelope(id="a", source_id="master", target_id="web", stream=gw.DataStream(
        stream_id="t", data=bytes(range(256)) * 16, is_end=False, content_type="audio/pcm;rate=24000;channels=1",
        seq=7, turn_id="t"))
    register = gw.Envelope(id="r", source_id="desk", target_id="master", register=gw.CapabilityRegister(
        capabilities=[gw.Capability(name="shell.run", description="run a command", params_schema_json="{}",
                                    dangerous=True)]))
    result = await page.evaluate("""async ([req, audio, text, reg]) => {
        const wire = await import('/js/wire.js');
        const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const b64 = (u8) => btoa(String.fromCharCode(...u8));
        const decoded = wire.decodeBinary(bytes(audio));
        const reencoded = wire.encodeBinary(wire.decodeBinary(bytes(req)));
        const fromJs = wire.encodeBinary({id: 'j', sourceId: 'web', targetId: 'master',
            stream: {streamId: 'mic', data: new Uint8Array([1, 2, 3, 4]), isEnd: true,
                     contentType: 'audio/pcm;rate=16000', seq: 3}});
        const capability = wire.decodeBinary(bytes(reg)).register.capabilities[0];
        return {seq: decoded.stream.seq, len: decoded.stream.data.length, turn: decoded.stream.turnId,
                reencoded: b64(reencoded), fromJs: b64(fromJs),
                text: wire.encodeText(wire.decodeText(text)),
                dangerous: capability.dangerous === true, reg: b64(wire.encodeBinary(wire.decodeBinary(bytes(reg))))};
    }""", [base64.b64encode(codec.encode_binary(envelope)).decode(),
           base64.b64encode(codec.encode_binary(audio)).decode(), codec.encode_text(envelope),
           base64.b64encode(codec.encode_binary(register)).decode()])
    assert result["dangerous"] and base64.b64decode(result["reg"]) == codec.encode_binary(register)
    assert (result["seq"], result["len"], result["turn"]) == (7, 4096, "t")
    assert base64.b64decode(result["reencoded"]) == codec.encode_binary(envelope)  # identical bytes
    from_js = codec.decode(base64.b64decode(result["fromJs"]))
    assert (from_js.stream.data, from_js.stream.is_end, from_js.stream.seq) == (b"\x01\x02\x03\x04", True, 3)
    assert codec.decode(result["text"]) == envelope


async def test_sdk_streams_audio_up_as_binary_datastreams(mesh: Mesh, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(f"http://{mesh.addresses['bridge']}/js/peromesh.js")
    outcome = await page.evaluate("""async (url) => {
        const { PeroMeshClient } = await import('/js/peromesh.js');
        const client = new PeroMeshClient({ url, token: 'test-token', deviceId: 'sdk-mic' });
        await client.connect();
        const heard = new Promise((resolve) => {
            client.on('transcription', (e) => resolve({ kind: 'transcription', final: e.params.is_final }));
            client.on('error', (e) => resolve({ kind: 'error', message: e.params.message }));
        });
        async function* speech() {  // 0.5 s of 16 kHz silence in 100 ms pieces
            for (let i = 0; i < 5; i++) yield new Int16Array(1600);
        }
        const mic = client.sendAudio(speech());
        await new Promise((r) => setTimeout(r, 100));
        await mic.stop();
        const result = await Promise.race([heard, new Promise((resolve) =>
            setTimeout(() => resolve({ kind: 'timeout' }), 40000))]);
        client.close();
        return result;
    }""", f"ws://{mesh.addresses['bridge']}/ws")
    assert outcome["kind"] in ("transcription", "error"), outcome
    if outcome["kind"] == "transcription":  # an ASR engine heard the utterance
        assert outcome["final"] == "true"
    else:  # no ASR engine here: the dialog says so precisely
        assert "user_audio" in outcome["message"]


SDK_LOGIC = """async () => {
    const { PeroMeshClient, encodeText } = await import('/js/peromesh.js');
    class FakeSocket {  // an in-page WebSocket: records what the SDK sends, lets the test feed frames
        constructor(url) { this.url = url; this.readyState = 1; this.sent = []; FakeSocket.last = this;
                           setTimeout(() => this.onopen && this.onopen(), 0); }
        send(frame) { this.sent.push(frame); }
        close(code = 1000, reason = '') { this.readyState = 3; this.onclose && this.onclose({ code, reason }); }
        feed(envelope) { this.onmessage({ data: encodeText(envelope) }); }
    }
    const client = new PeroMeshClient({ url: 'ws://fake/ws', token: 't', deviceId: 'd', WebSocket: FakeSocket,
                                        requestTimeoutMs: 200, backoff: { initialMs: 10, maxMs: 40, factor: 2 } });
    const seen = [];
    for (const name of ['assistant_delta', 'assistant_final', 'metrics', 'audio_chunk'])
        client.on(name, (e) => seen.push(`${name}:${e.turnId}`));
    const ws = () => FakeSocket.last;
    const event = (name, turn, params = {}) => ({ id: 'x', sourceId: 'master', targetId: 'd',
        request: { actionName: name, params: { turn_id: turn, ...params } } });
    const connected = client.connect();
    await new Promise((r) => setTimeout(r, 5));
    const hello = JSON.parse(ws().sent[0]);
    ws().feed({ id: 'w', welcome: { sessionId: 's', nodeId: 'd', protocolVersion: 1, heartbeatIntervalMs: 60000 } });
    await connected;
    ws().feed(event('assistant_delta', 's#1', { text_delta: 'a' }));    // turn 1 becomes current
    ws().feed(event('assistant_delta', 's#2', { text_delta: 'b' }));    // a newer turn: current now
    ws().feed(event('assistant_delta', 's#1', { text_delta: 'late' })); // stale: dropped
    ws().feed({ id: 'y', stream: { streamId: 's#1', turnId: 's#1', seq: 3, data: '' } }); // stale audio: dropped
    const cut = client.interrupt();                                      // cut turn 2 locally
    ws().feed(event('assistant_delta', 's#2', { text_delta: 'after-cut' })); // dropped
    ws().feed(event('assistant_final', 's#2', { interrupted: 'true' }));    // closing events still pass
    ws().feed(event('metrics', 's#2'));
    const interruptReq = JSON.parse(ws().sent[ws().sent.length - 1]);
    ws().feed({ id: 'r', response: { requestId: interruptReq.id, status: 0 } });
    await cut;
    let timeout = '';
    try { await client.request('phone', 'gps'); } catch (err) { timeout = err.message; }
    const failing = client.request('ghost', 'x');
    const failReq = JSON.parse(ws().sent[ws().sent.length - 1]);
    ws().feed({ id: 'e', response: { requestId: failReq.id, status: 1, code: 'NOT_FOUND', errorMsg: 'no ghost' } });
    let code = '';
    try { await failing; } catch (err) { code = err.code; }
    // the socket drops: the SDK reconnects by itself and says hello with the same device id
    const states = [];
    client.on('connection', (e) => states.push(e.state));
    const before = ws();
    before.close(1006, 'network');
    await new Promise((r) => setTimeout(r, 80));
    const again = JSON.parse(ws().sent[0]);
    client.close();
    return { hello: hello.hello, helloSource: hello.sourceId, seen, interrupt: interruptReq.request, timeout, code,
             states, reconnected: ws() !== before, againSource: again.sourceId };
}"""


async def test_sdk_turn_filter_requests_and_reconnect(mesh: Mesh, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(f"http://{mesh.addresses['bridge']}/js/peromesh.js")
    r = await page.evaluate(SDK_LOGIC)
    assert r["hello"]["token"] == "t" and r["hello"]["protocolVersion"] == 1 and r["helloSource"] == "d"
    assert r["seen"] == ["assistant_delta:s#1", "assistant_delta:s#2", "assistant_final:s#2", "metrics:s#2"]
    assert r["interrupt"] == {"actionName": "interrupt", "params": {"turn_id": "s#2"}}
    assert "no response within 200 ms" in r["timeout"] and r["code"] == "NOT_FOUND"
    assert r["states"][:1] == ["reconnecting"] and r["reconnected"] and r["againSource"] == "d"


SDK_REMINDERS = """async () => {
    const { PeroMeshClient, encodeText } = await import('/js/peromesh.js');
    class FakeSocket {
        constructor(url) { this.readyState = 1; this.sent = []; FakeSocket.last = this;
                           setTimeout(() => this.onopen && this.onopen(), 0); }
        send(frame) { this.sent.push(JSON.parse(frame)); }
        close(code = 1000, reason = '') { this.readyState = 3; this.onclose && this.onclose({ code, reason }); }
        feed(envelope) { this.onmessage({ data: encodeText(envelope) }); }
    }
    const client = new PeroMeshClient({ url: 'ws://fake/ws', token: 't', deviceId: 'd', WebSocket: FakeSocket });
    const ws = () => FakeSocket.last;
    const acks = () => ws().sent.filter((e) => e.request?.actionName === 'reminder_ack')
        .map((e) => e.request.params.cursor);
    const shown = [];  // what the handler saw, and how many acks had gone out when it ran
    client.on('reminder_trigger', (e) => shown.push([e.params.cursor, acks().length]));
    const connected = client.connect();
    await new Promise((r) => setTimeout(r, 5));
    const hello = ws().sent[0].hello;
    ws().feed({ id: 'w', welcome: { sessionId: 's', nodeId: 'd', protocolVersion: 1, heartbeatIntervalMs: 60000 } });
    await connected;
    const trigger = (cursor) => ({ id: `t${cursor}`, sourceId: 'master', targetId: 'd', request: {
        actionName: 'reminder_trigger', params: { id: 'r1', content: 'water', cursor, status: 'fired' } } });
    ws().feed(trigger('5'));
    ws().feed(trigger('6'));
    ws().feed(trigger('5'));  // a replay after a reconnect: shown already, acknowledged again
    client.close();
    return { hello, shown, acks: acks() };
}"""


async def test_sdk_acknowledges_each_reminder_after_showing_it_once(mesh: Mesh, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(f"http://{mesh.addresses['bridge']}/js/peromesh.js")
    r = await page.evaluate(SDK_REMINDERS)
    assert r["hello"]["reminderAcks"] is True
    assert r["shown"] == [["5", 0], ["6", 1]]  # each cursor once, acknowledged only after its handler ran
    assert r["acks"] == ["5", "6", "5"]
