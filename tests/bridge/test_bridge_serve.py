"""The bridge inside a real `peromesh serve` process: the generated token, a turn, and the console URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from server.app.settings import SERVERS

from .gateway_client import GatewayClient, action_is

BIN = Path(sys.executable).parent


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, str]]:
    ports = [arg for name in SERVERS for arg in (f"--{name}-port", "0")]
    ports += ["--only", "tts,core,bridge"]  # memory is not needed here (and loads a model)
    proc = subprocess.Popen(
        [str(BIN / "peromesh"), "serve", "--llm", "scripted", "--scripted-delay-ms", "1", "--data-dir", str(tmp_path),
         *ports], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PEROMESH_TOKEN": ""})
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any("peromesh: ready" in line for line in lines):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    try:
        assert any("bridge listening on" in line for line in lines), "".join(lines)
        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        endpoints["token"] = (tmp_path / "token").read_text().strip()
        yield endpoints
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()


async def test_serve_runs_the_bridge_with_the_data_dir_token(served: dict[str, str]) -> None:
    url = f"ws://{served['bridge']}/ws"
    refused = await GatewayClient.open(url, "dev", hello=False)
    answer = await refused.hello("not-the-token")
    assert answer.response.code == "UNAUTHENTICATED"
    with pytest.raises(ConnectionClosed):
        await refused.recv()
    client = await GatewayClient.open(url, "dev", token=served["token"])
    await client.request("chat", text="hi")
    got = await client.recv_until(action_is("assistant_final"), 60)
    assert any(e.HasField("stream") for e in got)
    assert got[-1].request.params["text"].startswith("Hello! I am Pero")
    await client.close()
