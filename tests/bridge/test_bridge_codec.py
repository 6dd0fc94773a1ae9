"""The Gateway codec, byte for byte: round trips, independent encoders, malformed input."""

from __future__ import annotations

import json

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from bridge import codec
from peromesh.gateway.v1 import envelope_pb2 as gw

HEADER = {"id": "e1", "source_id": "phone", "target_id": "master", "timestamp": 1_700_000_000_123, "trace_id": "s#1"}
PAYLOADS: dict[str, gw.Envelope] = {
    "heartbeat": gw.Envelope(**HEADER, heartbeat=gw.Heartbeat(seq=7)),
    "hello": gw.Envelope(**HEADER, hello=gw.Hello(token="t", device_name="Phone", client_version="1.2",
                                                  platform="android", capabilities=["location.gps", "notify"],
                                                  protocol_version=1)),
    "register": gw.Envelope(**HEADER, register=gw.CapabilityRegister(capabilities=[
        gw.Capability(name="notify", description="show a notification", params=["title", "body"],
                      params_schema_json='{"type":"object","properties":{"title":{"type":"string"}}}')])),
    "welcome": gw.Envelope(**HEADER, welcome=gw.Welcome(
        session_id="abc", protocol_version=1, resumed=True, node_id="phone", heartbeat_interval_ms=10_000,
        heartbeat_timeout_ms=30_000, resume_grace_ms=60_000, history_turns=3, max_frame_bytes=262_144,
        server_version="0.1.0")),
    "request": gw.Envelope(**HEADER, request=gw.ActionRequest(action_name="chat", params={"text": "你好", "b": "2"})),
    "response": gw.Envelope(**HEADER, response=gw.ActionResponse(request_id="r9", status=1, data="{}",
                                                                 error_msg="nope", code="NOT_FOUND")),
    "stream": gw.Envelope(**HEADER, stream=gw.DataStream(stream_id="s#1", data=bytes(range(256)) * 32, is_end=True,
                                                         content_type="audio/pcm;rate=24000;channels=1", seq=12,
                                                         turn_id="s#1")),
}


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_round_trip_binary_and_json(kind: str) -> None:
    envelope = PAYLOADS[kind]
    assert envelope.WhichOneof("payload") == kind
    binary = codec.encode_binary(envelope)
    text = codec.encode_text(envelope)
    assert codec.decode(binary, 1 << 20) == envelope
    assert codec.decode(text, 1 << 20) == envelope
    assert codec.encode_binary(codec.decode_text(text)) == binary  # JSON and binary agree exactly


def test_json_uses_proto3_mapping() -> None:
    text = codec.encode_text(PAYLOADS["request"])
    assert json.loads(text) == {"id": "e1", "sourceId": "phone", "targetId": "master",
                                "timestamp": "1700000000123", "traceId": "s#1",
                                "request": {"actionName": "chat", "params": {"text": "你好", "b": "2"}}}
    # PeroCore-style snake_case names and numeric int64 are accepted too; unknown fields are ignored.
    parsed = codec.decode_text('{"id":"1","source_id":"d","timestamp":5,"request":{"action_name":"x"},"future":1}')
    assert (parsed.source_id, parsed.timestamp, parsed.request.action_name) == ("d", 5, "x")


# -- an independent encoder: hand-written wire bytes ------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def test_decodes_hand_encoded_bytes_and_encodes_identically() -> None:
    entry = _len_field(1, b"text") + _len_field(2, "你好".encode())
    request = _len_field(1, b"chat") + _len_field(2, entry)
    data = (_len_field(1, b"e1") + _len_field(2, b"phone") + _len_field(3, b"master")
            + _int_field(4, 1_700_000_000_123) + _len_field(20, request))
    envelope = codec.decode(data)
    assert envelope == gw.Envelope(id="e1", source_id="phone", target_id="master", timestamp=1_700_000_000_123,
                                   request=gw.ActionRequest(action_name="chat", params={"text": "你好"}))
    assert codec.encode_binary(envelope) == data


def test_hand_encoded_audio_stream_with_extensions() -> None:
    pcm = bytes(4096)
    stream = (_len_field(1, b"t1") + _len_field(2, pcm) + _int_field(3, 1)
              + _len_field(4, b"audio/pcm;rate=16000") + _int_field(5, 3) + _len_field(6, b"t1"))
    data = _len_field(2, b"mic") + _len_field(3, b"master") + _len_field(30, stream)
    s = codec.decode(data).stream
    assert (s.stream_id, len(s.data), s.is_end, s.content_type, s.seq, s.turn_id) == (
        "t1", 4096, True, "audio/pcm;rate=16000", 3, "t1")
    assert codec.encode_binary(codec.decode(data)) == data


# -- PeroLink v1 (no PeroMesh extensions), built from the DESIGN field list --
def _perolink_v1() -> dict[str, type[Message]]:
    f = descriptor_pb2.FieldDescriptorProto
    s, b, i64, i32, msg, rep = f.TYPE_STRING, f.TYPE_BOOL, f.TYPE_INT64, f.TYPE_INT32, f.TYPE_MESSAGE, f.LABEL_REPEATED
    file = descriptor_pb2.FileDescriptorProto(name="perolink_v1_test.proto", package="perolinktest", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, str, int]) -> descriptor_pb2.DescriptorProto:
        m = file.message_type.add(name=name)
        for fname, number, ftype, type_name, label in fields:
            field = m.field.add(name=fname, number=number, type=ftype, label=label or f.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
        return m

    opt = 0
    message("Heartbeat", ("seq", 1, i64, "", opt))
    message("Hello", ("token", 1, s, "", opt), ("device_name", 2, s, "", opt), ("client_version", 3, s, "", opt),
            ("platform", 4, s, "", opt), ("capabilities", 5, s, "", rep))
    message("Capability", ("name", 1, s, "", opt), ("description", 2, s, "", opt), ("params", 3, s, "", rep))
    message("CapabilityRegister", ("capabilities", 1, msg, ".perolinktest.Capability", rep))
    request = message("ActionRequest", ("action_name", 1, s, "", opt),
                      ("params", 2, msg, ".perolinktest.ActionRequest.ParamsEntry", rep))
    entry = request.nested_type.add(name="ParamsEntry")
    entry.field.add(name="key", number=1, type=s, label=f.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=s, label=f.LABEL_OPTIONAL)
    entry.options.map_entry = True
    message("ActionResponse", ("request_id", 1, s, "", opt), ("status", 2, i32, "", opt), ("data", 3, s, "", opt),
            ("error_msg", 4, s, "", opt))
    message("DataStream", ("stream_id", 1, s, "", opt), ("data", 2, f.TYPE_BYTES, "", opt),
            ("is_end", 3, b, "", opt), ("content_type", 4, s, "", opt))
    env = message("Envelope", ("id", 1, s, "", opt), ("source_id", 2, s, "", opt), ("target_id", 3, s, "", opt),
                  ("timestamp", 4, i64, "", opt), ("trace_id", 5, s, "", opt))
    env.oneof_decl.add(name="payload")
    for name, number, type_name in (("heartbeat", 10, "Heartbeat"), ("hello", 11, "Hello"),
                                    ("register", 12, "CapabilityRegister"), ("request", 20, "ActionRequest"),
                                    ("response", 21, "ActionResponse"), ("stream", 30, "DataStream")):
        env.field.add(name=name, number=number, type=msg, type_name=f".perolinktest.{type_name}",
                      label=f.LABEL_OPTIONAL, oneof_index=0)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"perolinktest.{m.name}"))
            for m in file.message_type}


@pytest.mark.parametrize("kind", ["heartbeat", "hello", "register", "request", "response", "stream"])
def test_perolink_v1_clients_interoperate(kind: str) -> None:
    perolink = _perolink_v1()
    ours = PAYLOADS[kind]
    theirs = perolink["Envelope"]()
    theirs.ParseFromString(codec.encode_binary(ours))  # an old client reads our bytes

    assert theirs.WhichOneof("payload") == kind
    assert (theirs.id, theirs.source_id, theirs.timestamp) == (ours.id, ours.source_id, ours.timestamp)  # type: ignore[attr-defined]
    # ... and re-encodes it with our extensions kept as unknown fields, which we read back intact.
    assert codec.decode(theirs.SerializeToString()) == ours


def test_perolink_v1_built_envelope_decodes() -> None:
    perolink = _perolink_v1()
    theirs = perolink["Envelope"](id="1", source_id="pc", target_id="broadcast", timestamp=9,
                                  request=perolink["ActionRequest"](action_name="voice_update",
                                                                    params={"type": "status"}))
    ours = codec.decode(theirs.SerializeToString())
    assert ours == gw.Envelope(id="1", source_id="pc", target_id="broadcast", timestamp=9,
                               request=gw.ActionRequest(action_name="voice_update", params={"type": "status"}))


# -- malformed input → precise errors --------------------------------------
@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty binary frame"),
    (codec.encode_binary(PAYLOADS["request"])[:-3], "Envelope.request: length 30 at byte 34 exceeds the 27 bytes left"),
    (b"\x0a\xff\xff\xff\xff\x0f", "Envelope.id: length 4294967295 at byte 6 exceeds the 0 bytes left"),
    (b"\x0a\x05ab", "Envelope.id: length 5 at byte 2 exceeds the 2 bytes left"),
    (b"\x10\x01", "Envelope.source_id: wire type 0 (varint) at byte 0, expected 2 (length-delimited)"),
    (b"\x20\x05\x25\x00\x00\x00\x00", "Envelope.timestamp: wire type 5 (32-bit) at byte 2, expected 0 (varint)"),
    (b"\xa2\x01\x02\x08\x01", "Envelope.request.action_name: wire type 0 (varint) at byte 3"),
    (b"\xf2\x01\x03\x28\xff\xff", "Envelope.stream.seq: truncated varint at byte 4"),
    (b"\x20" + b"\xff" * 10 + b"\x01", "Envelope.timestamp: varint longer than 10 bytes at byte 1"),
    (b"\x80", "Envelope: tag: truncated varint at byte 0"),
    (b"\x00\x01", "Envelope: invalid field number 0 at byte 0"),
    (b"\x0b", "Envelope.id: wire type 3 (start-group)"),
    (b"\xfb\x01", "Envelope.#31: group wire type 3 is not used by the Gateway protocol"),
    (b"\x0f", "Envelope.id: wire type 7 (7) at byte 0, expected 2"),
    (b"\xf9\x01\x00\x00", "Envelope.#31: truncated 8-byte value at byte 2 (2 bytes left)"),
    (b"\x0a\x02\xc3\x28", "Envelope.id: invalid UTF-8 at byte 2"),
])
def test_malformed_binary_is_rejected_precisely(data: bytes, message: str) -> None:
    with pytest.raises(codec.CodecError) as caught:
        codec.decode(data)
    assert message in str(caught.value)


def test_unknown_fields_are_skipped_not_rejected() -> None:
    data = _len_field(99, b"future") + _int_field(98, 5) + _len_field(1, b"x")
    assert codec.decode(data).id == "x"


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty text frame"),
    ("{not json", "invalid JSON Envelope: Failed to load JSON"),
    ('{"timestamp": "soon"}', "invalid JSON Envelope: Failed to parse timestamp field"),
    ('{"request": {"params": {"a": 1}}}', "invalid JSON Envelope"),
    ('{"hello": {}, "request": {}}', "invalid JSON Envelope"),
    ('[1, 2]', "invalid JSON Envelope"),
])
def test_malformed_json_is_rejected_precisely(text: str, message: str) -> None:
    with pytest.raises(codec.CodecError) as caught:
        codec.decode(text)
    assert message in str(caught.value)


def test_frame_size_limit() -> None:
    frame = codec.encode_binary(PAYLOADS["stream"])
    with pytest.raises(codec.CodecError, match=rf"frame of {len(frame)} bytes exceeds the limit of 1000 bytes"):
        codec.decode(frame, max_frame_bytes=1000)
