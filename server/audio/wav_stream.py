"""Decode a WAV file that arrives in pieces (a Gateway audio DataStream) into PCM16 mono.

Browsers and recorders often hand over WAV rather than raw PCM. The header may
be split across chunks and may hold extra chunks (LIST, fact) before `data`;
the sizes may be placeholders (streamed writers do not know the length).
Accepted: 16-bit PCM, any channel count (mixed down to mono), 8–48 kHz.

`max_header_bytes` bounds what is buffered before the samples start (the
RIFF header and any chunks before `data`), not the file: a one-shot upload
of a whole file in one piece is parsed first, and only a header that is
still incomplete past the limit is refused.
"""

from __future__ import annotations

import struct

import numpy as np

from server.audio.pcm import MAX_RATE_HZ, MIN_RATE_HZ


class WavFormatError(ValueError):
    """The stream is not a WAV this decoder accepts; the message says why."""


class WavStreamDecoder:
    def __init__(self, max_header_bytes: int = 65536) -> None:
        self.sample_rate_hertz = 0  # known once the header is parsed
        self.channels = 0
        self._header = bytearray()
        self._max_header = max_header_bytes
        self._in_data = False
        self._carry = b""

    @property
    def ready(self) -> bool:
        """True once the header is parsed (sample_rate_hertz is known)."""
        return self._in_data

    def feed(self, data: bytes) -> bytes:
        """PCM16LE mono for the samples complete so far (b"" while the header is incomplete)."""
        if not self._in_data:
            self._header += data
            rest = self._parse_header()
            if rest is None:
                if len(self._header) > self._max_header:  # the header itself, not the samples after it
                    raise WavFormatError(f"no `data` chunk in the first {self._max_header} bytes")
                return b""
            data = rest
        frame = 2 * self.channels
        joined = self._carry + data
        whole = len(joined) - len(joined) % frame
        self._carry = joined[whole:]
        samples = np.frombuffer(joined[:whole], dtype="<i2")
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1).round().astype("<i2")
        return bytes(samples.tobytes())

    def _parse_header(self) -> bytes | None:
        head = bytes(self._header)
        if len(head) < 12:
            return None
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise WavFormatError("not a WAV stream (no RIFF/WAVE header)")
        position = 12
        while position + 8 <= len(head):
            chunk_id, size = head[position:position + 4], struct.unpack_from("<I", head, position + 4)[0]
            body = position + 8
            if chunk_id == b"data":
                if not self.channels:
                    raise WavFormatError("`data` before `fmt `")
                self._in_data = True
                self._header.clear()
                return head[body:]
            if body + size > self._max_header:  # say so now rather than buffer up to the limit
                name = chunk_id.decode("latin-1")
                raise WavFormatError(f"{name!r} chunk of {size} bytes before `data` exceeds the "
                                     f"{self._max_header}-byte header limit")
            if len(head) < body + size:
                return None  # this chunk is not complete yet
            if chunk_id == b"fmt ":
                self._read_format(head[body:body + size])
            position = body + size + size % 2  # chunks are word-aligned
        return None

    def _read_format(self, fmt: bytes) -> None:
        if len(fmt) < 16:
            raise WavFormatError("`fmt ` chunk too short")
        tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
        if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag is in the GUID
            tag = struct.unpack_from("<H", fmt, 24)[0]
        if tag != 1 or bits != 16:
            raise WavFormatError(f"only 16-bit PCM WAV is accepted (format tag {tag}, {bits} bits)")
        if not 1 <= channels <= 8 or not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:  # the bounds all speech input shares
            raise WavFormatError(f"unsupported WAV: {channels} channels at {rate} Hz "
                                 f"(1..8 channels, {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz)")
        self.channels, self.sample_rate_hertz = channels, rate
