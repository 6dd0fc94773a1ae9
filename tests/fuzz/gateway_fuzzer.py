"""A seeded fuzzer for the Gateway protocol over real sockets: the suite's short campaign
(tests/fuzz/test_gateway_fuzz.py) and the long one (benchmarks/fuzz.py) share it.

A `Case` is one frame and what the bridge owes it (bridge/README.md):

- `must_error`: an error answer (ActionResponse status 1) for the frame's id ("" when the frame
  did not decode) with a precise code (a gRPC code name, never UNKNOWN or INTERNAL) and a
  message, within `answer_s`; or a close with one of `may_close`;
- otherwise any answer or none (a late response, a broadcast to nobody, a heartbeat's echo).

After every case a heartbeat probe (a seq no case uses) must come back within `answer_s`: a
connection that neither answers nor closes is a stall. Every frame the mesh sends (source
"master"; a broadcast case of another fuzz connection arrives as that node's frame and is not
the mesh's answer) is checked: no UNKNOWN/INTERNAL code in an answer or an `error` event, no
error without a message; and no close without a code, nor one the case did not call for (1011
is a bridge fault). Whether a frame must be refused is predicted
from the frame with the bridge's own codec plus a table of what the protocol refuses, so the
oracle cannot drift from the decoder. Everything random comes from one `random.Random(seed)`:
a failure is replayed by its seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bridge import codec
from bridge.limits import Limits
from peromesh.gateway.v1 import envelope_pb2 as gw

PROBE_BASE = 1 << 40  # heartbeat seqs from here on are probes; cases use smaller ones
IMPRECISE = frozenset({"UNKNOWN", "INTERNAL", ""})
PRECISE = frozenset({"CANCELLED", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
                     "OUT_OF_RANGE", "UNIMPLEMENTED", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"})
HELLO_CLOSES = frozenset({4400, 4401})  # a refused first frame (bridge/README.md, Session)
HANDLED_ACTIONS = frozenset({"chat", "user_text", "interrupt", "task:add", "task:complete", "task:reopen",
                             "task:delete", "task:list", "reminder:add", "reminder:list", "reminder:cancel",
                             "node:list"})
AUDIO_TYPES = ("audio/pcm;rate=16000", "audio/pcm", "audio/pcm;rate=24000;channels=1", "audio/wav")
NASTY_STRINGS = ("", " ", "master", "broadcast", "\u0000", "😀" * 3, "../../etc/passwd", "%s%n", "null",
                 "x" * 300, "rate=1", ";;;", "audio/pcm;rate=", "0" * 40, "-1", "1e400")
WRONG_VALUES: tuple[Any, ...] = (0, -1, 1.5, 2**70, -(2**70), True, None, [], {}, [1, "a"], {"a": {"b": 1}},
                                 "", "not-a-number", "x" * 1000, "AAAA====", "!!", 1e308)
Frame = bytes | str


@dataclass(frozen=True)
class Case:
    label: str
    frame: Frame
    must_error: bool = False
    error_id: str = ""  # request_id of the error answer the bridge owes
    may_close: frozenset[int] = frozenset()
    text_as_bytes: bool = False  # send `frame` (bytes) as a text frame: invalid UTF-8 on purpose


@dataclass
class Tally:
    """What a campaign saw. `problems()` is what a test asserts empty."""

    frames: int = 0
    cases: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # error codes received
    closes: Counter[int] = field(default_factory=Counter)
    turns_ok: int = 0
    stalls: list[str] = field(default_factory=list)
    imprecise: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # must_error without a precise answer
    faults: list[str] = field(default_factory=list)  # closes nobody asked for, turns that failed

    def problems(self) -> list[str]:
        return [*self.stalls, *self.imprecise, *self.missing, *self.faults]

    def merge(self, other: Tally) -> None:
        self.frames += other.frames
        self.turns_ok += other.turns_ok
        for mine, theirs in ((self.cases, other.cases), (self.answers, other.answers), (self.closes, other.closes)):
            mine.update(theirs)  # type: ignore[attr-defined]
        for name in ("stalls", "imprecise", "missing", "faults"):
            getattr(self, name).extend(getattr(other, name))

    def summary(self) -> dict[str, Any]:
        return {"frames_sent": self.frames, "stalled_connections": len(self.stalls),
                "imprecise_answers": len(self.imprecise), "missing_errors": len(self.missing),
                "faults": len(self.faults), "bridge_faults_1011": self.closes.get(1011, 0),
                "closes_by_code": dict(sorted(self.closes.items())), "answers_by_code": dict(self.answers),
                "fresh_turns_ok": self.turns_ok, "cases": dict(self.cases)}


def _show(frame: Frame) -> str:
    text = repr(frame)
    unit = "bytes" if isinstance(frame, bytes) else "chars"
    return text if len(text) <= 160 else f"{text[:150]}…({len(frame)} {unit})"


class GatewayFuzzer:
    """Makes cases. `device` is the connection's node id (cases never target their own node)."""

    def __init__(self, seed: int, token: str, limits: Limits | None = None) -> None:
        self.rng = random.Random(seed)
        self.token = token
        self.limits = limits or Limits()
        self._ids = itertools.count(1)

    def _id(self) -> str:
        return f"fz{next(self._ids)}"

    # -- after hello -----------------------------------------------------
    def case(self, device: str) -> Case:
        """One post-hello case of a random kind (weights: mutations first)."""
        make = self.rng.choices([self.binary_mutated, self.binary_random, self.json_mutated, self.refused],
                                weights=[4, 1, 4, 2])[0]
        return make(device)

    def valid(self, device: str) -> gw.Envelope:
        """A well-formed envelope a client may send after hello (the mutations' seed corpus)."""
        r, rid = self.rng, self._id()
        base = {"id": rid, "source_id": device, "target_id": r.choice(("master", "master", "", "broadcast"))}
        pick = r.randrange(8)
        if pick == 0:
            return gw.Envelope(**base, heartbeat=gw.Heartbeat(seq=r.randrange(1000)))
        if pick == 1:
            data = bytes(r.randrange(0, 64) * 2)
            return gw.Envelope(**base, stream=gw.DataStream(stream_id=f"s{rid}", data=data, seq=r.randrange(8),
                                                            content_type=r.choice(AUDIO_TYPES),
                                                            is_end=r.random() < 0.3))
        if pick == 2:
            return gw.Envelope(**base, response=gw.ActionResponse(request_id=self._id(), status=r.randrange(2),
                                                                  data="{}", code=r.choice(("", "NOT_FOUND"))))
        if pick == 3:
            cap = gw.Capability(name=r.choice(("screen.capture", "shell.run", "", "x" * 80)), description="d",
                                params=["a"], params_schema_json=r.choice(("{}", "{", "")), dangerous=r.random() < 0.5)
            return gw.Envelope(**base, register=gw.CapabilityRegister(capabilities=[cap]))
        action = r.choice(("chat", "interrupt", "task:list", "task:complete", "task:add", "reminder:cancel",
                           "reminder:add", "node:list", "nope", "shell.run"))
        params = {"text": r.choice(("hi", "", "  ")), "turn_id": f"{device}#{r.randrange(99)}", "id": "t-1",
                  "title": "fuzz", "when": r.choice(("tomorrow 9am", "yesterday", "", "2026-99-99"))}
        chosen = dict(r.sample(sorted(params.items()), r.randrange(len(params) + 1)))
        return gw.Envelope(**base, request=gw.ActionRequest(action_name=action, params=chosen))

    def binary_mutated(self, device: str) -> Case:
        data = bytearray(codec.encode_binary(self.valid(device)))
        for _ in range(self.rng.choice((1, 1, 2, 4))):
            self._mutate_bytes(data)
        return self.judge("binary-mutated", bytes(data), device)

    def binary_random(self, device: str) -> Case:
        size = self.rng.choice((1, 2, 5, 17, 64, 300))
        return self.judge("binary-random", self.rng.randbytes(size), device)

    def json_mutated(self, device: str) -> Case:
        tree = json_format.MessageToDict(self.valid(device))
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            self._mutate_tree(tree)
        text = json.dumps(tree, ensure_ascii=self.rng.random() < 0.5)
        if self.rng.random() < 0.3:
            text = self._mutate_text(text)
        return self.judge("json-mutated", text, device)

    def refused(self, device: str) -> Case:
        """Well-formed envelopes the protocol refuses, each with a precise error."""
        r, rid = self.rng, self._id()

        def to_master(**payload: Any) -> gw.Envelope:
            return gw.Envelope(id=rid, source_id=device, target_id="master", **payload)

        def audio(content_type: str, data: bytes = b"\0\0" * 80) -> gw.Envelope:
            return to_master(stream=gw.DataStream(stream_id=f"s{rid}", data=data, content_type=content_type))

        def request(action: str, target: str = "master", **params: str) -> gw.Envelope:
            return gw.Envelope(id=rid, source_id=device, target_id=target,
                               request=gw.ActionRequest(action_name=action, params=params))

        bad_rates = ("99999999999", "0", "7999", "48001", "-16000", "16k", "9" * 3000)
        bad_types = ("audio/ogg", "audio/", "AUDIO/MPEG;rate=16000", "audio/pcmx", "audio/webm;codecs=opus")
        makers: list[Callable[[], gw.Envelope]] = [
            lambda: audio(f"audio/pcm;rate={r.choice(bad_rates)}"),
            lambda: audio("audio/pcm;rate=16000", b"\0" * r.choice((1, 3, 4097))),  # odd: not whole samples
            lambda: audio(f"audio/pcm;rate=16000;channels={r.choice(('2', '0', 'x'))}"),
            lambda: audio(r.choice(bad_types)),
            lambda: audio("audio/wav", b"OggS" + bytes(60)),
            lambda: to_master(hello=gw.Hello(token=self.token)),
            lambda: to_master(welcome=gw.Welcome(session_id="s")),
            lambda: to_master(),
            lambda: request(f"no-such-{rid}"),
            lambda: request("screen.capture", target=f"nobody-{rid}"),
            lambda: request("chat", text=r.choice(("", "   "))),
            lambda: request("interrupt", turn_id=f"{device}#x{rid}"),
            lambda: to_master(stream=gw.DataStream(stream_id="t", data=b"hi", content_type="text/plain")),
            lambda: request("task:complete", id=r.choice(NASTY_STRINGS)),
            lambda: request("reminder:add", text="x", when=r.choice(NASTY_STRINGS)),
            lambda: to_master(response=gw.ActionResponse(request_id=f"never-asked-{rid}", status=1)),
        ]
        pick = r.randrange(len(makers))
        envelope = makers[pick]()
        binary = r.random() < 0.5
        return self.judge(f"refused-{pick}", codec.encode(envelope, binary), device)

    def judge(self, label: str, frame: Frame, device: str) -> Case:
        """What the bridge owes `frame`: predicted with its own codec and the protocol's refusals."""
        try:
            envelope = codec.decode(frame, self.limits.max_frame_bytes)
        except codec.CodecError:
            return Case(label, frame, must_error=True, error_id="")
        return Case(label, frame, must_error=_refused(envelope, device), error_id=envelope.id)

    # -- before hello and at the edges ------------------------------------
    def first_frame(self, device: str) -> Case:
        """A first frame: a hello mutated or with a wrong field, or something else entirely. The
        bridge owes a welcome (it is still a valid hello) or an error and a 4400/4401 close."""
        r = self.rng
        hello = gw.Envelope(id="hello", source_id=device, target_id="master",
                            hello=gw.Hello(token=self.token, device_name=device, platform="fuzz"))
        pick = r.randrange(6)
        if pick == 0:
            hello.hello.token = r.choice(("", "wrong", self.token + "x", self.token.upper()))
        elif pick == 1:
            hello.source_id = r.choice(("", "master", "broadcast", "x" * 300))
        elif pick == 2:
            hello = gw.Envelope(id="h", source_id=device, heartbeat=gw.Heartbeat(seq=1))
        if pick <= 2:
            frame: Frame = codec.encode(hello, r.random() < 0.5)
        elif pick == 3:
            data = bytearray(codec.encode_binary(hello))
            self._mutate_bytes(data)
            frame = bytes(data)
        elif pick == 4:
            tree = json_format.MessageToDict(hello)
            self._mutate_tree(tree)
            frame = json.dumps(tree)
        else:
            frame = r.choice((r.randbytes(r.randrange(1, 200)), "{", "[]", "null", "\"hello\"", " "))
        return Case(f"first-{pick}", frame, must_error=True, may_close=HELLO_CLOSES)

    def oversize(self, device: str, hard: bool) -> Case:
        """A frame over the soft limit (an error, the connection stays) or the hard one (1009)."""
        size = self.limits.hard_frame_bytes + 1 if hard else self.limits.max_frame_bytes + 1
        envelope = gw.Envelope(id=self._id(), source_id=device, target_id="master",
                               stream=gw.DataStream(stream_id="big", data=bytes(size), content_type="audio/pcm"))
        frame = codec.encode(envelope, self.rng.random() < 0.5)
        if hard:
            return Case("oversize-hard", frame, may_close=frozenset({1009}))
        return Case("oversize-soft", frame, must_error=True, error_id="")

    def bad_utf8(self) -> Case:
        """A text frame that is not UTF-8: the WebSocket layer closes with 1007."""
        return Case("text-not-utf8", b"{\"id\": \"\xff\xfe\"}", may_close=frozenset({1007}), text_as_bytes=True)

    # -- mutations ---------------------------------------------------------
    def _mutate_bytes(self, data: bytearray) -> None:
        r = self.rng
        if not data:
            data.extend(r.randbytes(4))
            return
        at = r.randrange(len(data))
        op = r.randrange(8)
        if op == 0:
            data[at] ^= 1 << r.randrange(8)
        elif op == 1:
            data[at] = r.choice((0x00, 0x7F, 0x80, 0xFF, r.randrange(256)))
        elif op == 2:
            data[at:at] = r.randbytes(r.randrange(1, 9))
        elif op == 3:
            del data[at:at + r.randrange(1, 9)]
        elif op == 4:
            del data[at:]
        elif op == 5:
            data[at:at] = data[at:at + r.randrange(1, 16)]
        elif op == 6:  # a field of any number and wire type, with a plausible value
            data.extend(bytes([r.randrange(1, 256)]) + r.choice((b"\x05", b"\x7f" * 3, b"\xff" * 10, b"\x02hi")))
        else:
            data[at:at] = b"\xff" * 10 + b"\x01"  # an overlong varint

    def _mutate_tree(self, tree: dict[str, Any]) -> None:
        r = self.rng
        node, key = _random_slot(r, tree)
        op = r.randrange(6)
        if op == 0 or key is None:
            name = r.choice(("zzz", "id", "payload", "stream", "request", "hello", "heartbeat"))
            node[name] = copy.deepcopy(r.choice(WRONG_VALUES))
        elif op == 1:
            node[key] = copy.deepcopy(r.choice(WRONG_VALUES))
        elif op == 2:
            node[key] = r.choice(NASTY_STRINGS)
        elif op == 3:
            del node[key]
        elif op == 4:
            tree["request"] = {"actionName": r.choice((*NASTY_STRINGS, "chat", "interrupt")),
                               "params": {r.choice(("text", "turn_id", "id")): r.choice(NASTY_STRINGS)}}
        else:
            tree[r.choice(("targetId", "id", "sourceId"))] = r.choice(NASTY_STRINGS)

    def _mutate_text(self, text: str) -> str:
        r = self.rng
        at = r.randrange(len(text) + 1)
        op = r.randrange(4)
        if op == 0:
            return text[:at]
        if op == 1:
            return text[:at] + r.choice(("{", "}", "[", "]", '"', ",", ":", "\\", "\\u12", "\u0000")) + text[at:]
        if op == 2:
            return text[:at] + text[at + 1:]
        return text[:at] + text[at:] * 2


def _random_slot(r: random.Random, tree: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A random (dict, key) inside `tree`, descending into nested objects."""
    node: dict[str, Any] = tree
    while node:
        key = r.choice(sorted(node))
        if isinstance(node[key], dict) and node[key] and r.random() < 0.6:
            node = node[key]
            continue
        return node, key
    return node, None


def _refused(envelope: gw.Envelope, device: str) -> bool:
    """True when the protocol refuses this decoded envelope with an error answer right away."""
    kind = envelope.WhichOneof("payload")
    target = envelope.target_id
    if kind is None or kind in ("hello", "welcome"):
        return True
    if target not in ("master", ""):
        known = target == "broadcast" or target.startswith("fz")  # fuzz connections are all named fz…
        return kind in ("request", "stream") and not known
    if kind == "stream":
        return _audio_refused(envelope.stream)
    if kind == "request":
        action = envelope.request.action_name
        params = envelope.request.params
        if action in ("chat", "user_text"):
            return not (params.get("text") or params.get("content") or "").strip()
        if action == "interrupt":  # a turn id no session has (real ones are "<session id>#<n>")
            return bool(envelope.id and params.get("turn_id"))
        return action not in HANDLED_ACTIONS
    return False


def _audio_refused(stream: gw.DataStream) -> bool:
    media, *rest = stream.content_type.split(";")
    media = media.strip().lower()
    params = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in rest)}
    if media in ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"):
        return False  # depends on the stream so far; checked by the answers' precision only
    if media != "audio/pcm":
        return True  # an unsupported audio type, or a non-audio stream the hub does not take
    rate = params.get("rate", "") or "16000"
    good_rate = rate.isascii() and rate.isdigit() and 8000 <= int(rate[:12]) <= 48000 and len(rate) <= 12
    return not good_rate or params.get("channels", "1") != "1" or len(stream.data) % 2 == 1


# -- running cases over real sockets ---------------------------------------
class FuzzConnection:
    """One authenticated connection under fuzz: send a case and a probe, read, judge."""

    def __init__(self, ws: ClientConnection, device: str, tally: Tally, answer_s: float) -> None:
        self.ws = ws
        self.device = device
        self.tally = tally
        self.answer_s = answer_s
        self._probes = itertools.count(PROBE_BASE)
        self.closed = False

    @classmethod
    async def open(cls, url: str, device: str, token: str, tally: Tally, answer_s: float) -> FuzzConnection:
        ws = await connect(url, max_size=None, compression=None, open_timeout=answer_s)
        connection = cls(ws, device, tally, answer_s)
        await ws.send(codec.encode_binary(gw.Envelope(id="hello", source_id=device, target_id="master",
                                                      hello=gw.Hello(token=token, platform="fuzz"))))
        async with asyncio.timeout(answer_s):
            first = codec.decode(await ws.recv(), 1 << 30)
        if not first.HasField("welcome"):
            raise AssertionError(f"{device}: hello refused: {first}")
        return connection

    async def run(self, case: Case) -> None:
        """Send one case and judge what comes back; marks the connection closed when it closes."""
        self.tally.frames += 1
        self.tally.cases[case.label] += 1
        probe = next(self._probes)
        errors: set[str] = set()
        echoed = False
        try:
            await self.ws.send(case.frame, text=True) if case.text_as_bytes else await self.ws.send(case.frame)
            await self.ws.send(codec.encode_binary(gw.Envelope(source_id=self.device, target_id="master",
                                                               heartbeat=gw.Heartbeat(seq=probe))))
            async with asyncio.timeout(self.answer_s):
                while not echoed or (case.must_error and case.error_id not in errors):
                    envelope = self._judge(case, await self.ws.recv())
                    echoed |= envelope.HasField("heartbeat") and envelope.heartbeat.seq == probe
                    if envelope.source_id == "master" and envelope.HasField("response") and envelope.response.status:
                        errors.add(envelope.response.request_id)
        except TimeoutError:
            what = "no precise error" if echoed else "no answer and no close"
            (self.tally.missing if echoed else self.tally.stalls).append(
                f"{case.label}: {what} within {self.answer_s:g}s for {_show(case.frame)}")
        except ConnectionClosed as exc:
            self.closed = True
            self._closed(case, exc)

    def _judge(self, case: Case, frame: Frame) -> gw.Envelope:
        envelope = codec.decode(frame, 1 << 30)
        code = ""
        if envelope.source_id != "master":
            return envelope  # another node's frame routed here (a broadcast): not the mesh's answer
        if envelope.HasField("response") and envelope.response.status == 1:
            code = envelope.response.code
            if not envelope.response.error_msg:
                self.tally.imprecise.append(f"{case.label}: error {code} without a message for {_show(case.frame)}")
        elif envelope.HasField("request") and envelope.request.action_name == "error":
            code = envelope.request.params.get("code", "")
        else:
            return envelope
        self.tally.answers[code] += 1
        if code in IMPRECISE or code not in PRECISE:
            self.tally.imprecise.append(f"{case.label}: answered {code or 'no code'} "
                                        f"{envelope.response.error_msg or envelope.request.params.get('message')!r} "
                                        f"for {_show(case.frame)}")
        return envelope

    def _closed(self, case: Case, exc: ConnectionClosed) -> None:
        close = exc.rcvd
        if close is None:
            self.tally.faults.append(f"{case.label}: closed without a close frame after {_show(case.frame)}")
            return
        self.tally.closes[close.code] += 1
        if close.code not in case.may_close:
            self.tally.faults.append(f"{case.label}: closed {close.code} {close.reason!r} after {_show(case.frame)}")

    async def drain(self, wait_s: float = 0.3) -> None:
        """Judge late answers (hub actions answer asynchronously) for a moment, then close."""
        last = Case("late", b"")
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            async with asyncio.timeout(wait_s):
                while True:
                    self._judge(last, await self.ws.recv())
        await self.ws.close()


async def run_connection(url: str, token: str, fuzzer: GatewayFuzzer, device: str, cases: int,
                         tally: Tally, answer_s: float, make: Callable[[str], Case] | None = None) -> None:
    """`cases` post-hello cases on one connection (a new one whenever a case closes it)."""
    connection = await FuzzConnection.open(url, device, token, tally, answer_s)
    for i in range(cases):
        if connection.closed:
            connection = await FuzzConnection.open(url, f"{device}-{i}", token, tally, answer_s)
        await connection.run((make or fuzzer.case)(connection.device))
    if not connection.closed:
        await connection.drain()


async def run_first_frame(url: str, case: Case, tally: Tally, answer_s: float) -> None:
    """A fresh connection whose first frame is `case`: a welcome, or a precise error then a close."""
    tally.frames += 1
    tally.cases[case.label] += 1
    ws = await connect(url, max_size=None, compression=None, open_timeout=answer_s)
    judge = FuzzConnection(ws, "", tally, answer_s)
    try:
        await ws.send(case.frame)
        async with asyncio.timeout(answer_s):
            envelope = judge._judge(case, await ws.recv())
            if envelope.HasField("welcome"):
                return
            if not (envelope.HasField("response") and envelope.response.status == 1):
                tally.missing.append(f"{case.label}: first answer is no error: {envelope} for {_show(case.frame)}")
            await ws.recv()  # the close comes next
            tally.faults.append(f"{case.label}: a refused first frame did not close the socket: {_show(case.frame)}")
    except TimeoutError:
        tally.stalls.append(f"{case.label}: no answer or close within {answer_s:g}s for {_show(case.frame)}")
    except ConnectionClosed as exc:
        judge._closed(case, exc)
    finally:
        await ws.close()


async def run_flood(url: str, token: str, device: str, frames: int, tally: Tally, answer_s: float) -> None:
    """`frames` heartbeats without reading: refused with RESOURCE_EXHAUSTED, then closed with 1008."""
    case = Case("flood", b"", may_close=frozenset({1008}))
    connection = await FuzzConnection.open(url, device, token, tally, answer_s)
    beat = codec.encode_binary(gw.Envelope(source_id=device, target_id="master", heartbeat=gw.Heartbeat(seq=1)))
    tally.cases["flood"] += 1
    refused = False
    try:
        for _ in range(frames):
            await connection.ws.send(beat)
            tally.frames += 1
        async with asyncio.timeout(answer_s * 2):
            while True:
                envelope = connection._judge(case, await connection.ws.recv())
                refused |= envelope.HasField("response") and envelope.response.code == "RESOURCE_EXHAUSTED"
    except TimeoutError:
        tally.stalls.append(f"flood: {frames} frames, not closed within {answer_s * 2:g}s")
    except ConnectionClosed as exc:
        connection._closed(case, exc)
        if not refused:
            tally.missing.append("flood: closed without a RESOURCE_EXHAUSTED error first")


async def fresh_turn(url: str, token: str, device: str, tally: Tally, wait_s: float) -> None:
    """A new client's chat turn must run to its assistant_final (the mesh still serves)."""
    try:
        connection = await FuzzConnection.open(url, device, token, tally, wait_s)
        await connection.ws.send(codec.encode_binary(gw.Envelope(
            id="turn", source_id=device, target_id="master",
            request=gw.ActionRequest(action_name="chat", params={"text": "Are you still there?"}))))
        async with asyncio.timeout(wait_s):
            while True:
                envelope = codec.decode(await connection.ws.recv(), 1 << 30)
                if envelope.HasField("request") and envelope.request.action_name == "assistant_final":
                    break
        await connection.ws.close()
        tally.turns_ok += 1
    except (TimeoutError, ConnectionClosed, OSError, AssertionError) as exc:
        tally.faults.append(f"fresh turn of {device} failed: {type(exc).__name__}: {exc}")
