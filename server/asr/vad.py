"""Voice activity detection with Silero VAD, streamed frame by frame.

Why Silero: it is a real neural VAD that ships inside faster-whisper (the
`silero_vad_v6.onnx` asset, run with onnxruntime, both already needed for
ASR), so it loads offline with no extra package; it separates speech from
noise, music and breathing far better than WebRTC VAD or an energy gate, and
costs ~0.1 ms per 32 ms frame here. The ONNX session is shared per process
(onnxruntime sessions are thread-safe); each stream keeps its own LSTM state.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

FRAME_SAMPLES = 512  # 32 ms at 16 kHz: the window the model was trained on
_CONTEXT_SAMPLES = 64

_session: Any = None
_session_lock = threading.Lock()


def _shared_session() -> Any:
    global _session
    with _session_lock:
        if _session is None:
            from faster_whisper.vad import get_vad_model

            _session = get_vad_model().session
        return _session


def warm() -> None:
    """Load the shared session and run one frame (blocking: call it in a thread, before serving),
    so the first stream's recognizer does not load the model on the event loop."""
    SileroVad().probabilities(np.zeros(FRAME_SAMPLES, dtype=np.float32))


class SileroVad:
    """Speech probability (0..1) for consecutive 512-sample frames of one audio stream."""

    def __init__(self) -> None:
        self._session = _shared_session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)

    def reset(self) -> None:
        self._h.fill(0)
        self._c.fill(0)
        self._context.fill(0)

    def probabilities(self, frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One probability per frame; `frames` is float32 audio whose length is a multiple of 512."""
        if len(frames) % FRAME_SAMPLES:
            raise ValueError(f"audio length {len(frames)} is not a multiple of {FRAME_SAMPLES}")
        out = np.empty(len(frames) // FRAME_SAMPLES, dtype=np.float32)
        for i in range(len(out)):
            frame = frames[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]
            window = np.concatenate([self._context, frame])[None, :]
            prob, self._h, self._c = self._session.run(None, {"input": window, "h": self._h, "c": self._c})
            self._context = frame[-_CONTEXT_SAMPLES:].copy()
            out[i] = float(np.asarray(prob).ravel()[0])
        return out
