"""`peromesh serve` as a real process: grpcurl list/describe/Converse with the token, graceful Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.app.settings import SERVERS

BIN = Path(sys.executable).parent
GRPCURL = str(BIN / "grpcurl")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    ports = [arg for name in SERVERS for arg in (f"--{name}-port", "0")]
    proc = subprocess.Popen(
        [str(BIN / "peromesh"), "serve", "--llm", "scripted", "--scripted-delay-ms", "1",
         "--data-dir", str(tmp_path), *ports],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "peromesh: ready" in line or not line:
            break
    assert any("peromesh: ready" in line for line in lines), "".join(lines)
    assert any("created access token" in line for line in lines)
    endpoints = json.loads((tmp_path / "endpoints.json").read_text())
    endpoints["token"] = (tmp_path / "token").read_text().strip()
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600
    yield proc, endpoints
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def grpcurl(*args: str, stdin: str | None = None, token: str | None = None, ok: bool = True) -> str:
    """grpcurl as the README runs it: `-H "authorization: Bearer $(cat ~/.peromesh/token)"`."""
    auth = ["-H", f"authorization: Bearer {token}"] if token else []
    done = subprocess.run([GRPCURL, "-plaintext", *auth, *args], input=stdin, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode == 0) == ok, done.stderr
    return done.stdout if ok else done.stderr


def test_grpcurl_lists_describes_and_converses(served: tuple[subprocess.Popen[str], dict[str, str]]) -> None:
    proc, endpoints = served
    token = endpoints.pop("token")
    core, tts = endpoints["core"], endpoints["tts"]
    listed = grpcurl(core, "list", token=token).split()
    assert {"peromesh.dialog.v1.DialogService", "grpc.health.v1.Health"} <= set(listed)
    assert "peromesh.tts.v1.TtsService" in grpcurl(tts, "list", token=token).split()
    described = grpcurl(core, "describe", "peromesh.dialog.v1.DialogService", token=token)
    assert "rpc Converse ( stream .peromesh.dialog.v1.ConverseRequest )" in described
    assert "STATE_INTERRUPTED" in grpcurl(core, "describe", "peromesh.dialog.v1.State", token=token)
    for address in endpoints.values():
        if ":" in address and address != endpoints.get("bridge"):
            assert '"status": "SERVING"' in grpcurl(address, "grpc.health.v1.Health/Check")  # open: no token
    assert "Unauthenticated" in grpcurl(core, "peromesh.hub.v1.HubService/ListNodes", ok=False)
    script = '{"config": {"sessionId": "grpcurl-1"}}\n{"userText": {"text": "Hello from grpcurl"}}\n'
    out = grpcurl("-d", "@", core, "peromesh.dialog.v1.DialogService/Converse", stdin=script, token=token)
    events = [json.loads(chunk) for chunk in _json_objects(out)]
    keys = [next(k for k in e if k not in ("turnId", "turn_id")).replace("_", "").lower() for e in events]
    assert keys[0] == "sessionstarted" and keys[-1] == "stateupdate"
    assert {"assistantdelta", "audiobegin", "audiochunk", "assistantfinal", "audioend", "metrics"} <= set(keys)
    assert "STATE_IDLE" in json.dumps(events[-1])

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert proc.stdout is not None
    assert "shutting down" in proc.stdout.read()


def _json_objects(text: str) -> list[str]:
    """grpcurl prints one pretty JSON object per message, back to back."""
    objects, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
            if depth == 1:
                start = i
        elif ch == "}":
            depth -= 1
            if depth == 0:
                objects.append(text[start:i + 1])
    return objects


def test_tts_and_core_as_separate_processes(tmp_path: Path) -> None:
    """The same code split across processes: the core reaches TTS by address."""
    token = "split-secret"  # one mesh token across processes, as the README's split example passes it
    tts = subprocess.Popen([str(BIN / "peromesh"), "serve", "--only", "tts", "--tts-port", "0", "--token", token,
                            "--data-dir", str(tmp_path / "tts")], stdout=subprocess.PIPE, text=True)
    core = None
    try:
        tts_addr = _ready(tts, tmp_path / "tts")["tts"]
        core = subprocess.Popen([str(BIN / "peromesh"), "serve", "--only", "core", "--core-port", "0",
                                 "--tts-addr", tts_addr, "--llm", "scripted", "--scripted-delay-ms", "1",
                                 "--token", token,
                                 "--data-dir", str(tmp_path / "core")], stdout=subprocess.PIPE, text=True)
        core_addr = _ready(core, tmp_path / "core")["core"]
        script = '{"config": {"sessionId": "split"}}\n{"userText": {"text": "hi"}}\n'
        out = grpcurl("-d", "@", core_addr, "peromesh.dialog.v1.DialogService/Converse", stdin=script, token=token)
        assert "audio_chunk" in out.replace("audioChunk", "audio_chunk")
    finally:
        for proc in (core, tts):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
                assert proc.stdout is not None
                proc.stdout.close()


def _ready(proc: subprocess.Popen[str], data_dir: Path) -> dict[str, str]:
    assert proc.stdout is not None
    for _ in range(200):
        line = proc.stdout.readline()
        if "peromesh: ready" in line or not line:
            break
    return dict(json.loads((data_dir / "endpoints.json").read_text()))
