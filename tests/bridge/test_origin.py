"""The Gateway WebSocket checks `Origin`, with real websockets against a real bridge + core.

Native clients (no Origin) and the bridge's own pages connect; any other web page is refused with
HTTP 403 and the reason, unless --bridge-allowed-origins lists it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from meshkit import start_test_mesh
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request

from bridge.origins import OriginPolicy


async def _handshake(url: str, origin: str | None) -> int:
    """101 when the socket opened, else the HTTP status of the refusal (its body checked by callers)."""
    try:
        async with connect(url, origin=origin, open_timeout=20):  # type: ignore[arg-type]
            return 101
    except InvalidStatus as exc:
        assert b"may not open the Gateway WebSocket" in exc.response.body
        return exc.response.status_code


@pytest.mark.parametrize("allowed", ["", "https://app.example"])
async def test_only_own_pages_native_clients_and_listed_origins_connect(data_dir: Path, allowed: str) -> None:
    mesh = await start_test_mesh(data_dir, "--bridge-allowed-origins", allowed, "--asr-model", "none",
                                 only=("core", "bridge"))
    try:
        bridge = mesh.addresses["bridge"]
        url, port = f"ws://{bridge}/ws", bridge.rsplit(":", 1)[1]
        assert await _handshake(url, None) == 101  # a native client sends no Origin
        assert await _handshake(url, f"http://{bridge}") == 101  # the console this bridge serves
        assert await _handshake(url, "http://evil.example") == 403
        assert await _handshake(url, f"http://127.0.0.1:{int(port) + 1}") == 403  # another local port
        assert await _handshake(url, "null") == 403  # sandboxed frames and file:// pages
        assert await _handshake(url, "https://app.example") == (101 if allowed else 403)
    finally:
        await mesh.stop()


def test_origins_are_compared_by_scheme_host_and_port() -> None:
    def refused(policy: OriginPolicy, origin: str, host: str = "127.0.0.1:8765") -> bool:
        return policy.refusal(Request("/ws", Headers({"Host": host, "Origin": origin}))) is not None

    default = OriginPolicy()
    assert not refused(default, "http://127.0.0.1:8765") and not refused(default, "http://LOCALHOST", "localhost:80")
    assert refused(default, "https://127.0.0.1:8765", "127.0.0.1") and refused(default, "http://127.0.0.1")
    listed = OriginPolicy.of(["https://App.Example", ""])
    assert not refused(listed, "https://app.example:443") and refused(listed, "http://app.example")
    assert not refused(OriginPolicy.of(["*"]), "http://anything.example")
