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

from server.tts import voices
from server.tts.voices import Voice

ESPEAK_RATE_HZ = 22050
READ_BYTES = 4096
ENGINE = "espeak-ng"
_VOICES = {"zh": "cmn", "en": "en-us"}
# Besides its voices, a female variant of the two main English accents is listed (any variant is
# accepted by name, "en-gb-scotland+m3"; listing all ~100 of each voice would drown the menu).
LISTED_VARIANTS = (("en-us", "f3"), ("en-gb", "f3"))


class EspeakEngine:
    """Speaks any language espeak-ng has a voice for (Mandarin poorly)."""

    name = ENGINE

    def __init__(self, binary: str | None = None, words_per_minute: int = 175) -> None:
        found = binary or shutil.which("espeak-ng")
        if not found:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        self._binary = found
        self._wpm = words_per_minute
        self.last_pid: int | None = None  # for tests that prove the process is reaped
        # espeak-ng's voices and variants (~10 ms each, once, at construction: not on the event loop later)
        self._voices = parse_voices(_listing(found, "--voices"))
        self._variants = frozenset(parse_variants(_listing(found, "--voices=variant")))
        self._languages = frozenset(voice.name for voice in self._voices)
        self._listed = [*self._voices, *(v for base, variant in LISTED_VARIANTS
                                         if (v := self.find_voice(f"{base}+{variant}")) is not None)]

    def supports(self, language: str) -> bool:
        return True

    def voices(self) -> list[Voice]:
        return self._listed

    def find_voice(self, name: str) -> Voice | None:
        """A voice `--voices` lists, or one of them with a variant ("en-us+f3")."""
        base, plus, variant = name.partition("+")
        found = voices.find(self._voices, base)
        if not plus:
            return found
        if found is None or variant not in self._variants:
            return None
        return Voice(name, ENGINE, found.languages, f"{found.display_name}, {_variant_label(variant)}")

    def voice_for(self, language: str, voice: str = "") -> str:
        """The configured voice when it speaks `language`; else the language's own espeak-ng voice
        (a mixed zh/en segment must not read its Mandarin run with an English voice); en-us when
        espeak-ng has none for it."""
        chosen = self.find_voice(voice)
        if chosen is not None and chosen.speaks(language):
            return voice
        return _VOICES.get(language) or (language if language in self._languages else "en-us")

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


def _listing(binary: str, option: str) -> str:
    return subprocess.run([binary, option], capture_output=True, text=True, timeout=10, check=False).stdout


def parse_voices(listing: str) -> list[Voice]:
    """`espeak-ng --voices` as Voices: the Language column is the name `-v` takes, its primary
    subtag the language the router assigns ("cmn", espeak-ng's Mandarin, is "zh"; its pinyin
    voice "cmn-latn-pinyin" reads Latin letters, not Han, so it stays "cmn")."""
    found: dict[str, Voice] = {}
    for line in listing.splitlines()[1:]:
        columns = line.split()
        if len(columns) < 4 or columns[1] in found:
            continue
        name = columns[1]
        language = "zh" if name == "cmn" else name.split("-")[0]
        found[name] = Voice(name, ENGINE, (language,), columns[3].replace("_", " "))
    return list(found.values())


def _variant_label(variant: str) -> str:
    """espeak-ng's f1..f5 are female, m1..m8 male variants; the others have names."""
    kinds = {"f": "female", "m": "male"}
    if variant[:1] in kinds and variant[1:].isdigit():
        return f"{kinds[variant[0]]} {variant[1:]}"
    return f"variant {variant}"


def parse_variants(listing: str) -> list[str]:
    """`espeak-ng --voices=variant`: the variant names ("f3", "Alex"), from the File column "!v/f3"."""
    return [columns[4].removeprefix("!v/") for line in listing.splitlines()[1:]
            if len(columns := line.split()) >= 5 and columns[4].startswith("!v/")]


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
