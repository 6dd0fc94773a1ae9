"""A seeded fuzzer for raw gRPC request bytes: the suite's short campaign
(tests/fuzz/test_grpc_fuzz.py) and the long one (benchmarks/fuzz_grpc.py) share it.

Every method of every PeroMesh service is enumerated from the generated descriptors and called
on whichever server reports it SERVING (health), with the mesh token, through a generic channel
method (no client-side serializer, so any bytes go out). A request is one of: random bytes, a
valid seed message (each oneof choice set in turn) mutated by bit flips, truncation, splices and
junk varints, or the bytes of another method's message. Request streams get several of them,
then a half-close.

What each call is owed: a status other than UNKNOWN or INTERNAL (those mean a servicer crashed or
grpc decoded what our decoder should have), with a message when it is not OK. A unary call that
does not answer within `call_s` is a stall; a response stream that is still open then is fine
(watch streams are meant to stay open) and is cancelled. Everything random comes from one
`random.Random(seed)`: a failure is replayed by its seed.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import descriptor as pbd
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

import peromesh
from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc
from server.rpc.channels import open_channel

IMPRECISE = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
MAX_STREAM_MESSAGES = 6


@dataclass(frozen=True)
class Method:
    """One RPC: its path, shapes, and the valid seed messages its requests are mutated from."""

    path: str  # "/peromesh.dialog.v1.DialogService/Converse"
    service: str
    client_streaming: bool
    server_streaming: bool
    seeds: tuple[bytes, ...]


def services() -> dict[str, pbd.ServiceDescriptor]:
    """Every service in the generated peromesh.* modules, by full name."""
    found: dict[str, pbd.ServiceDescriptor] = {}
    for info in pkgutil.walk_packages(peromesh.__path__, "peromesh."):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(info.name)
            for service in module.DESCRIPTOR.services_by_name.values():
                found[service.full_name] = service
    return found


def _seeds(descriptor: pbd.Descriptor) -> tuple[bytes, ...]:
    """The empty message, and one message per oneof choice (sub-message present or scalar set)."""
    cls = message_factory.GetMessageClass(descriptor)
    out = [cls().SerializeToString()]
    for oneof in descriptor.oneofs:
        for f in oneof.fields:
            msg = cls()
            if f.message_type is not None:
                getattr(msg, f.name).SetInParent()
            elif f.type == pbd.FieldDescriptor.TYPE_STRING:
                setattr(msg, f.name, "hello")
            elif f.type == pbd.FieldDescriptor.TYPE_BOOL:
                setattr(msg, f.name, True)
            elif f.type == pbd.FieldDescriptor.TYPE_BYTES:
                setattr(msg, f.name, b"\x00\x01")
            else:
                setattr(msg, f.name, 1)
            out.append(msg.SerializeToString())
    return tuple(out)


def methods(hosted: set[str]) -> list[Method]:
    """The methods of the services in `hosted`, in a stable order."""
    out = []
    for name, service in sorted(services().items()):
        if name not in hosted:
            continue
        for m in service.methods:
            out.append(Method(f"/{name}/{m.name}", name, m.client_streaming, m.server_streaming,
                              _seeds(m.input_type)))
    return out


class Mutator:
    """Seeded request bytes: random, mutated seeds, or another method's seeds."""

    def __init__(self, seed: int, corpus: list[bytes]) -> None:
        self.random = random.Random(seed)
        self._corpus = corpus or [b""]

    def payload(self, method: Method) -> bytes:
        r = self.random
        roll = r.random()
        if roll < 0.2:
            return r.randbytes(r.choice((1, 2, 3, 7, 16, 64, 300)))
        if roll < 0.3:
            return r.choice(self._corpus)
        return self.mutate(r.choice(method.seeds or (b"",)))

    def mutate(self, data: bytes) -> bytes:
        r = self.random
        buf = bytearray(data)
        for _ in range(r.randint(1, 4)):
            op = r.randrange(6)
            if op == 0 and buf:  # flip a bit
                i = r.randrange(len(buf))
                buf[i] ^= 1 << r.randrange(8)
            elif op == 1 and buf:  # truncate
                del buf[r.randrange(len(buf)):]
            elif op == 2:  # a field with a random tag and wire type
                buf += bytes([r.randrange(256)]) + r.randbytes(r.randint(0, 9))
            elif op == 3:  # a length-delimited field claiming more than there is
                buf += bytes([(r.randint(1, 30) << 3) | 2, r.randint(100, 255), 0x7F]) + r.randbytes(2)
            elif op == 4:  # an over-long varint
                buf += bytes([(r.randint(1, 30) << 3)]) + b"\xff" * r.randint(10, 12)
            elif op == 5 and buf:  # splice another seed in
                i = r.randrange(len(buf) + 1)
                buf[i:i] = r.choice(self._corpus)
        return bytes(buf)


@dataclass
class Tally:
    """What a campaign saw: messages and calls, answers by status, imprecise answers, stalls."""

    messages: int = 0
    calls: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    imprecise: list[str] = field(default_factory=list)  # "path code details" (first ones)
    stalls: list[str] = field(default_factory=list)
    fresh_turns: int = 0
    failed_turns: int = 0

    def record(self, method: Method, code: grpc.StatusCode, details: str, sent: list[bytes]) -> None:
        self.by_code[code.name] += 1
        if code in IMPRECISE or (code != grpc.StatusCode.OK and not details):
            if len(self.imprecise) < 20:
                shown = [m[:48].hex() for m in sent[:MAX_STREAM_MESSAGES + 1]]
                self.imprecise.append(f"{method.path} {code.name} {details!r} after {shown}")
            else:
                self.imprecise.append("…")

    def summary(self) -> dict[str, object]:
        return {"messages_sent": self.messages, "calls": self.calls, "answers_by_code": dict(self.by_code),
                "imprecise": len(self.imprecise), "stalls": len(self.stalls), "fresh_turns": self.fresh_turns,
                "failed_turns": self.failed_turns, "first_problems": (self.imprecise + self.stalls)[:10]}


async def hosted_services(address: str, token: str, names: set[str]) -> set[str]:
    """Which of `names` the server at `address` serves (its health service knows)."""
    out = set()
    async with open_channel(address, token) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in names:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            except grpc.aio.AioRpcError:
                continue
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                out.add(name)
    return out


def _requests(mutator: Mutator, method: Method) -> list[bytes]:
    if not method.client_streaming:
        return [mutator.payload(method)]
    count = mutator.random.randint(1, MAX_STREAM_MESSAGES)
    first = [mutator.random.choice(method.seeds)] if mutator.random.random() < 0.5 else []  # often a valid opener
    return first + [mutator.payload(method) for _ in range(count)]


async def fuzz_call(channel: grpc.aio.Channel, method: Method, mutator: Mutator, tally: Tally,
                    call_s: float) -> None:
    """One call with seeded bytes; its status goes into `tally`."""
    requests = _requests(mutator, method)
    tally.messages += len(requests)
    tally.calls += 1
    kind = ("stream" if method.client_streaming else "unary") + "_" + ("stream" if method.server_streaming
                                                                      else "unary")
    factory = getattr(channel, kind)
    call = factory(method.path, request_serializer=None, response_deserializer=None)
    payload = iter(requests) if method.client_streaming else requests[0]
    try:
        if method.server_streaming:
            stream = call(payload, timeout=call_s)
            async for _ in stream:
                pass
            code, details = await stream.code(), await stream.details()
        else:
            await call(payload, timeout=call_s)
            code, details = grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as exc:
        code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and not details.startswith("Deadline Exceeded"):
        tally.record(method, code, details, requests)  # the server's own deadline answer
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        tally.by_code["CLIENT_DEADLINE"] += 1
        if not method.server_streaming:
            tally.stalls.append(f"{method.path}: no answer within {call_s:g} s")
    else:
        tally.record(method, code, details, requests)


async def fuzz_batch(address: str, token: str, batch: list[Method], mutator: Mutator, tally: Tally,
                     call_s: float, parallel: int = 4) -> None:
    """Every method of `batch`, `parallel` calls at a time, on one channel."""
    async with open_channel(address, token) as channel:
        pending: set[asyncio.Task[None]] = set()
        for method in batch:
            pending.add(asyncio.create_task(fuzz_call(channel, method, mutator, tally, call_s)))
            if len(pending) >= parallel:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)


def schedule(all_methods: list[Method], rounds: int, r: random.Random) -> Iterator[Method]:
    """Each method `rounds` times, shuffled."""
    order = [m for m in all_methods for _ in range(rounds)]
    r.shuffle(order)
    yield from order


async def fresh_turn(core: str, token: str, tally: Tally, wait_s: float) -> None:
    """A new client's text turn must reach its assistant_final and IDLE."""
    requests = [dpb.ConverseRequest(config=dpb.SessionConfig(text_only=True)),
                dpb.ConverseRequest(user_text=dpb.UserText(text="are you still there?"))]
    async with open_channel(core, token) as channel:
        seen = []
        try:
            call = dpb_grpc.DialogServiceStub(channel).Converse(iter(requests), timeout=wait_s)
            async for event in call:
                seen.append(event.WhichOneof("event"))
        except grpc.aio.AioRpcError as exc:
            seen.append(f"{exc.code().name}: {exc.details()}")
    if "assistant_final" in seen:
        tally.fresh_turns += 1
    else:
        tally.failed_turns += 1
        tally.stalls.append(f"fresh turn failed: {seen[-5:]}")
