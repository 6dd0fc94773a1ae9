"""A fresh `peromesh serve` process whose output is watched, and one timed turn.

Shared by tests/mesh/test_warm_start.py (short) and benchmarks/first_turn.py (the figures): both
start a real process, wait for `peromesh: ready`, then time turns over real gRPC. Every model load
prints a `peromesh: loading …` line (server/warmup.py), so a load after `ready` is visible here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from meshkit import Conversation

from peromesh.dialog.v1 import dialog_service_pb2 as pb

BIN = Path(sys.executable).parent
TOKEN = "warm-token"
READY = "peromesh: ready"
LOADING = "peromesh: loading "


class ServedMesh:
    """`peromesh serve` as a child process; a thread collects its output lines as they come."""

    def __init__(self, data_dir: Path, *flags: str, only: str = "tts,memory,core") -> None:
        self.data_dir = data_dir
        ports = [a for name in only.split(",") for a in (f"--{name}-port", "0")]
        self.proc = subprocess.Popen(
            [str(BIN / "peromesh"), "serve", "--only", only, "--data-dir", str(data_dir), "--token", TOKEN,
             "--log-level", "WARNING", *ports, *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self.ready_at: int | None = None  # index of the `ready` line
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="served-mesh-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
                if self.ready_at is None and line.startswith(READY):
                    self.ready_at = len(self.lines) - 1
                    self._ready.set()
        self._ready.set()  # the process ended: waiting for `ready` is over either way

    def wait_ready(self, timeout_s: float = 240.0) -> float:
        """Block until `ready` (seconds waited); raises with the output if it never comes."""
        started = time.monotonic()
        if not self._ready.wait(timeout_s) or self.ready_at is None:
            raise RuntimeError("peromesh serve did not become ready:\n" + "\n".join(self.output()))
        return time.monotonic() - started

    def output(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def before_ready(self) -> list[str]:
        with self._lock:
            return self.lines[: self.ready_at]

    def after_ready(self) -> list[str]:
        with self._lock:
            return [] if self.ready_at is None else self.lines[self.ready_at + 1 :]

    def endpoints(self) -> dict[str, str]:
        return dict(json.loads((self.data_dir / "endpoints.json").read_text()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class TurnTiming:
    first_delta_s: float  # user_text sent → first assistant_delta
    first_audio_s: float  # user_text sent → first audio_chunk


async def timed_turn(conversation: Conversation, text: str, timeout_s: float = 60.0) -> TurnTiming:
    """Say `text`, time its first delta and first audio, and wait until the turn is over (idle)."""
    started = time.perf_counter()
    conversation.say(text)
    delta = (await conversation.until("assistant_delta", timeout_s))[-1]
    first_delta = time.perf_counter() - started
    await conversation.until("audio_chunk", timeout_s, turn_id=delta.turn_id)
    first_audio = time.perf_counter() - started
    while True:
        event = (await conversation.until("state_update", timeout_s, turn_id=delta.turn_id))[-1]
        if event.state_update.state == pb.STATE_IDLE:
            return TurnTiming(first_delta, first_audio)
