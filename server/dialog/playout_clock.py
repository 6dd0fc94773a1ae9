"""Is the client still playing the assistant's audio? An estimate for voice barge-in.

A turn is complete on the server once its last chunk is sent, but the client
plays it in real time, often for seconds more (the model and the voices run
faster than speech). Speech that starts then must still silence the
assistant. The estimate assumes the client plays delivered chunks back to
back from their arrival: each chunk extends the play-out end by its duration.
"""

from __future__ import annotations

import time

from peromesh.dialog.v1 import dialog_service_pb2 as pb

MARGIN_S = 0.15  # network and output-buffer slack


class ClientPlayout:
    def __init__(self, sample_rate_hertz: int) -> None:
        self._bytes_per_s = sample_rate_hertz * 2
        self._ends_at = 0.0
        self._turn_id = ""
        self._chunks = 0

    def delivered(self, event: pb.ConverseResponse) -> None:
        """Account an outbound event (call for every event handed to the client)."""
        kind = event.WhichOneof("event")
        if kind == "audio_chunk":
            now = time.perf_counter()
            if event.turn_id != self._turn_id:
                self._turn_id, self._chunks, self._ends_at = event.turn_id, 0, now
            self._chunks += 1
            self._ends_at = max(self._ends_at, now) + len(event.audio_chunk.pcm) / self._bytes_per_s
        elif kind == "audio_cancel" and event.turn_id == self._turn_id:
            self._ends_at = 0.0

    @property
    def turn_id(self) -> str:
        """The turn whose audio was delivered last."""
        return self._turn_id

    def playing(self) -> bool:
        return time.perf_counter() < self._ends_at - MARGIN_S

    def stop(self) -> tuple[str, int]:
        """Forget the play-out; returns (turn_id, chunks delivered) for the audio_cancel."""
        self._ends_at = 0.0
        return self._turn_id, self._chunks
