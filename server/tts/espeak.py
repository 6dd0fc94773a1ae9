"""espeak-ng as a streaming engine: PCM is read from its stdout as it speaks.

It is the always-available engine (a Debian package, GPL, so it runs as a
subprocess rather than being linked). Cancelling kills the process and reaps
it, so no zombie is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator

import numpy as np
import soxr

ESPEAK_RATE_HZ = 22050
READ_BYTES = 4096
_VOICES = {"zh": "cmn", "en": "en-us"}


class EspeakEngine:
    """Speaks any language espeak-ng has a voice for (Mandarin poorly)."""

    name = "espeak-ng"

    def __init__(self, binary: str | None = None, words_per_minute: int = 175) -> None:
        found = binary or shutil.which("espeak-ng")
        if not found:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        self._binary = found
        self._wpm = words_per_minute
        self.last_pid: int | None = None  # for tests that prove the process is reaped
        listing = subprocess.run([found, "--voices"], capture_output=True, text=True, timeout=10, check=False)
        # espeak-ng's language codes (~10 ms, once, at construction: not on the event loop later)
        self._languages = frozenset(line.split()[1] for line in listing.stdout.splitlines()[1:] if line.split())

    def supports(self, language: str) -> bool:
        return True

    def voice_for(self, language: str, voice: str = "") -> str:
        """The configured voice when it speaks `language`; else the language's own espeak-ng voice
        (a mixed zh/en segment must not read its Mandarin run with an English voice); en-us when
        espeak-ng has none for it."""
        default = _VOICES.get(language) or (language if language in self._languages else "en-us")
        if voice and voice.split("-")[0] == default.split("-")[0]:
            return voice
        return default

    async def synthesize(self, text: str, language: str, voice: str, sample_rate_hertz: int) -> AsyncIterator[bytes]:
        proc = await asyncio.create_subprocess_exec(
            self._binary, "--stdout", "-v", self.voice_for(language, voice), "-s", str(self._wpm),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        self.last_pid = proc.pid
        assert proc.stdin and proc.stdout
        try:
            proc.stdin.write(text.encode("utf-8") + b"\n")
            await proc.stdin.drain()
            proc.stdin.close()
            async for pcm in _resampled(_wav_payload(proc.stdout), ESPEAK_RATE_HZ, sample_rate_hertz):
                yield pcm
            if await proc.wait() != 0:
                raise RuntimeError(f"espeak-ng exited with {proc.returncode}")
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            # communicate() drains stdout to EOF: with reading paused on a full buffer,
            # a plain wait() would never see the pipe close and hang forever.
            await proc.communicate()


async def _wav_payload(stream: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Strip the streamed WAV header (its sizes are placeholders) and yield samples."""
    header = await stream.readexactly(44)
    if header[:4] != b"RIFF" or header[36:40] != b"data":
        raise RuntimeError("espeak-ng did not produce a WAV stream")
    while chunk := await stream.read(READ_BYTES):
        yield chunk


async def _resampled(chunks: AsyncIterator[bytes], rate_in: int, rate_out: int) -> AsyncIterator[bytes]:
    """Resample PCM16 mono on the fly, carrying odd bytes between reads."""
    resampler = None if rate_in == rate_out else soxr.ResampleStream(rate_in, rate_out, 1, dtype="int16")
    carry = b""
    async for chunk in chunks:
        data = carry + chunk
        even = len(data) - len(data) % 2
        carry = data[even:]
        samples = np.frombuffer(data[:even], dtype="<i2")
        out = samples if resampler is None else resampler.resample_chunk(samples)
        if len(out):
            yield out.astype("<i2").tobytes()
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype="<i2"), last=True)
        if len(tail):
            yield tail.astype("<i2").tobytes()
