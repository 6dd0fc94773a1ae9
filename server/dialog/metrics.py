"""Per-turn timings: reported to the client and recorded as OpenTelemetry histograms.

The first-delta and first-audio moments are only timestamped when they happen; their histograms
are recorded when the turn finishes. A histogram record costs tens of microseconds on a turn's
cold path, and at the first token it sat between the model and the client's first delta.
"""

from __future__ import annotations

import time

from opentelemetry import metrics

from peromesh.dialog.v1 import dialog_service_pb2 as pb

_meter = metrics.get_meter("peromesh.dialog")
_first_delta = _meter.create_histogram("peromesh.turn.first_delta", unit="ms", description="input → first text")
_first_audio = _meter.create_histogram("peromesh.turn.first_audio", unit="ms", description="input → first audio")
_total = _meter.create_histogram("peromesh.turn.total", unit="ms", description="input → turn end")
_interrupt = _meter.create_histogram("peromesh.turn.interrupt", unit="ms", description="interrupt → audio_cancel")


class TurnMetricsRecorder:
    def __init__(self, started: float) -> None:
        self._started = started
        self.t_first_delta_ms = 0.0
        self.t_first_audio_ms = 0.0

    def _since(self) -> float:
        return (time.perf_counter() - self._started) * 1000.0

    def first_delta(self) -> None:
        self.t_first_delta_ms = self._since()

    def first_audio(self) -> None:
        self.t_first_audio_ms = self._since()

    def finish(self, tokens: int, t_interrupt_ms: float = 0.0) -> pb.TurnMetrics:
        total = self._since()
        if self.t_first_delta_ms:
            _first_delta.record(self.t_first_delta_ms)
        if self.t_first_audio_ms:
            _first_audio.record(self.t_first_audio_ms)
        _total.record(total)
        if t_interrupt_ms:
            _interrupt.record(t_interrupt_ms)
        return pb.TurnMetrics(t_first_delta_ms=self.t_first_delta_ms, t_first_audio_ms=self.t_first_audio_ms,
                              t_total_ms=total, t_interrupt_ms=t_interrupt_ms, tokens=tokens)
