"""A minimal WebSocket client for fan-out benchmarks: one asyncio Protocol per connection.

The websockets library runs a coroutine per received message, which on a small machine costs the
benchmark process more CPU than the server spends sending, so the measured delivery time would be
the harness's. This client parses frames in `data_received` and only timestamps them; decoding
happens after the measurement. It speaks just what the benchmark needs (RFC 6455: handshake,
masked binary frames out, unfragmented frames in, pong for ping).
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable

Arrival = Callable[[float, bytes], None]


class RawClient(asyncio.Protocol):
    def __init__(self, on_frame: Arrival) -> None:
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshaken = asyncio.get_running_loop().create_future()
        self.first_frame: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if not self.handshaken.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b"\r\n", 1)[0]
            del self.buffer[:end + 4]
            if b" 101 " not in status:
                self.handshaken.set_exception(ConnectionError(status.decode()))
                return
            self.handshaken.set_result(None)
        while (frame := self._next_frame()) is not None:
            opcode, payload = frame
            if opcode == 0x9:
                self.send(payload, opcode=0xA)
            elif opcode in (0x1, 0x2):
                if not self.first_frame.done():
                    self.first_frame.set_result(payload)
                else:
                    self.on_frame(now, payload)

    def _next_frame(self) -> tuple[int, bytes] | None:
        b = self.buffer
        if len(b) < 2:
            return None
        opcode, length, at = b[0] & 0x0F, b[1] & 0x7F, 2
        if length == 126:
            if len(b) < 4:
                return None
            length, at = struct.unpack_from("!H", b, 2)[0], 4
        elif length == 127:
            if len(b) < 10:
                return None
            length, at = struct.unpack_from("!Q", b, 2)[0], 10
        if len(b) < at + length:
            return None
        payload = bytes(b[at:at + length])
        del b[:at + length]
        return opcode, payload

    def send(self, payload: bytes, opcode: int = 0x2) -> None:
        assert self.transport is not None
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        self.transport.write(head + mask + masked)


async def open_raw(host: str, port: int, path: str, on_frame: Arrival) -> RawClient:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: RawClient(on_frame), host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    assert client.transport is not None
    client.transport.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                            ).encode())
    await client.handshaken
    return client
