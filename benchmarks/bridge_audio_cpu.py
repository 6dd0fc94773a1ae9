"""Bridge CPU per second of speech: binary DataStream frames vs the same audio as base64-in-JSON.

The bridge's outbound path for audio is codec.encode (protobuf binary, or proto3 JSON where bytes
become base64) + websockets send. This sends S seconds of 24 kHz PCM16 mono speech, in the 8 KiB
chunks the dialog produces, both ways over a real loopback WebSocket to a client in another
process, and reports the CPU time this (sending) process spent per second of audio, plus the
client's decode CPU per second of audio (what a browser saves). Lower is better.

Usage: .venv/bin/python benchmarks/bridge_audio_cpu.py [--seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from websockets.asyncio.server import ServerConnection, serve

from bridge import codec
from peromesh.gateway.v1 import envelope_pb2 as gw

RATE, CHUNK = 24_000, 8192
CLIENT = """
import asyncio, json, sys, time
from websockets.asyncio.client import connect
from bridge import codec
async def main():
    async with connect(sys.argv[1], max_size=None, compression=None) as ws:
        cpu = time.process_time()
        count = 0
        async for frame in ws:
            if frame in ("end", b"end"):
                break
            envelope = codec.decode(frame, 1 << 20)
            count += len(envelope.stream.data)
        print(json.dumps({"cpu_s": time.process_time() - cpu, "bytes": count}), flush=True)
asyncio.run(main())
"""


def chunks(seconds: float) -> list[gw.Envelope]:
    pcm = os.urandom(CHUNK)  # incompressible, like speech samples
    count = int(seconds * RATE * 2 / CHUNK)
    return [gw.Envelope(id=f"m-{i}", source_id="master", target_id="web", timestamp=1_795_000_000_000 + i,
                        stream=gw.DataStream(stream_id="s#1", data=pcm, content_type="audio/pcm;rate=24000;channels=1",
                                             seq=i, turn_id="s#1")) for i in range(count)]


async def measure(binary: bool, seconds: float) -> dict[str, float]:
    envelopes = chunks(seconds)
    result: dict[str, float] = {}
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        for envelope in envelopes:
            await ws.send(codec.encode(envelope, binary))
        result["cpu_s"], result["wall_s"] = time.process_time() - cpu, time.perf_counter() - wall
        await ws.send("end")
        done.set()

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, f"ws://127.0.0.1:{port}/",
                                                      stdout=subprocess.PIPE)
        out, _ = await client.communicate()
        await done.wait()
    audio_s = len(envelopes) * CHUNK / (RATE * 2)
    client_cpu = json.loads(out)["cpu_s"]
    return {"bridge_cpu_ms_per_audio_s": 1000 * result["cpu_s"] / audio_s,
            "client_decode_cpu_ms_per_audio_s": 1000 * client_cpu / audio_s,
            "bytes_per_audio_s": len(codec.encode(envelopes[0], binary).encode() if not binary
                                     else codec.encode(envelopes[0], True)) * len(envelopes) / audio_s}


async def run(seconds: float) -> None:
    figures = {}
    for name, binary in (("binary_datastream", True), ("base64_json", False)):
        figures[name] = await measure(binary, seconds)
    for name, f in figures.items():
        print(json.dumps({"metric": f"bridge_audio_cpu_{name}", "unit": "ms CPU per s of audio", "audio_s": seconds,
                          **{k: round(v, 3) for k, v in f.items()}}), flush=True)
    key = "bridge_cpu_ms_per_audio_s"
    ratio = figures["base64_json"][key] / figures["binary_datastream"][key]
    print(json.dumps({"metric": "bridge_audio_cpu_ratio_json_vs_binary", "ratio": round(ratio, 2)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0)
    args = parser.parse_args()
    asyncio.run(run(args.seconds))


if __name__ == "__main__":
    main()
