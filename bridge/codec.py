"""The Gateway codec: WebSocket frames ⇄ `Envelope` messages, nothing else.

Binary frames are the protobuf binary encoding, text frames the proto3 JSON
mapping (both done by the protobuf library). Before a binary frame reaches
the parser, `wire_check` walks it against the Envelope descriptor so that a
malformed frame is rejected with a precise reason (which field, which byte,
what was wrong) instead of protobuf's generic "Error parsing message" — and
so that a known field with the wrong wire type, which the parser would
silently keep as an unknown field, is an error too.

No sockets here: every function is pure and tested byte for byte.
"""

from __future__ import annotations

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from peromesh.gateway.v1 import envelope_pb2 as gw

Frame = bytes | str
DEFAULT_MAX_FRAME_BYTES = 256 * 1024
MAX_DEPTH = 8

_WT_VARINT, _WT_I64, _WT_LEN, _WT_SGROUP, _WT_EGROUP, _WT_I32 = 0, 1, 2, 3, 4, 5
_WIRE_NAMES = {0: "varint", 1: "64-bit", 2: "length-delimited", 3: "start-group", 4: "end-group", 5: "32-bit"}
_T = FieldDescriptor
_EXPECTED_WIRE_TYPE = {
    **dict.fromkeys((_T.TYPE_STRING, _T.TYPE_BYTES, _T.TYPE_MESSAGE), _WT_LEN),
    **dict.fromkeys((_T.TYPE_FIXED64, _T.TYPE_SFIXED64, _T.TYPE_DOUBLE), _WT_I64),
    **dict.fromkeys((_T.TYPE_FIXED32, _T.TYPE_SFIXED32, _T.TYPE_FLOAT), _WT_I32),
}


class CodecError(ValueError):
    """A frame that is not a valid Gateway envelope; the message says exactly why."""


def encode_binary(envelope: gw.Envelope) -> bytes:
    """The envelope as a binary frame (deterministic: map entries sorted)."""
    return envelope.SerializeToString(deterministic=True)


def encode_text(envelope: gw.Envelope) -> str:
    """The envelope as a text frame (proto3 JSON, lowerCamelCase names, compact)."""
    return json_format.MessageToJson(envelope, indent=None, ensure_ascii=False)


def encode(envelope: gw.Envelope, binary: bool) -> Frame:
    """A binary or text frame for `envelope`."""
    return encode_binary(envelope) if binary else encode_text(envelope)


def decode(frame: Frame, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> gw.Envelope:
    """Decode a binary (bytes) or text (str) frame; raises CodecError with the reason."""
    size = len(frame) if isinstance(frame, bytes) else len(frame.encode())
    if size > max_frame_bytes:
        raise CodecError(f"frame of {size} bytes exceeds the limit of {max_frame_bytes} bytes")
    return decode_binary(frame) if isinstance(frame, bytes) else decode_text(frame)


def decode_binary(data: bytes) -> gw.Envelope:
    """Parse a binary frame after checking its wire structure."""
    if not data:
        raise CodecError("empty binary frame: expected a protobuf Envelope")
    wire_check(data)
    envelope = gw.Envelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as exc:  # pragma: no cover - wire_check catches what the parser rejects
        raise CodecError(f"invalid protobuf Envelope: {exc}") from exc
    return envelope


def decode_text(text: str) -> gw.Envelope:
    """Parse a text frame (proto3 JSON; unknown fields ignored for newer clients)."""
    if not text.strip():
        raise CodecError("empty text frame: expected a JSON Envelope")
    envelope = gw.Envelope()
    try:
        json_format.Parse(text, envelope, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise CodecError(f"invalid JSON Envelope: {exc}") from exc
    return envelope


def wire_check(data: bytes, descriptor: Descriptor = gw.Envelope.DESCRIPTOR) -> None:
    """Walk `data` as a `descriptor` message; raise CodecError at the first fault."""
    _check_message(memoryview(data), 0, len(data), descriptor, descriptor.name, 0)


def _check_message(buf: memoryview, pos: int, end: int, desc: Descriptor, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CodecError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    while pos < end:
        start = pos
        tag, pos = _varint(buf, pos, end, f"{path}: tag")
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise CodecError(f"{path}: invalid field number 0 at byte {start}")
        field = desc.fields_by_number.get(number)
        name = f"{path}.{field.name}" if field else f"{path}.#{number}"
        if field is not None:
            _expect_wire_type(field, wire_type, name, start)
        pos = _skip_value(buf, pos, end, wire_type, name, field, depth)


def _expect_wire_type(field: FieldDescriptor, wire_type: int, name: str, at: int) -> None:
    expected = _EXPECTED_WIRE_TYPE.get(field.type, _WT_VARINT)
    packed = wire_type == _WT_LEN and field.is_repeated and expected != _WT_LEN
    if wire_type != expected and not packed:
        got, want = _WIRE_NAMES.get(wire_type, str(wire_type)), _WIRE_NAMES[expected]
        raise CodecError(f"{name}: wire type {wire_type} ({got}) at byte {at}, expected {expected} ({want})")


def _skip_value(buf: memoryview, pos: int, end: int, wire_type: int, name: str,
                field: FieldDescriptor | None, depth: int) -> int:
    if wire_type == _WT_VARINT:
        return _varint(buf, pos, end, name)[1]
    if wire_type in (_WT_I64, _WT_I32):
        width = 8 if wire_type == _WT_I64 else 4
        if end - pos < width:
            raise CodecError(f"{name}: truncated {width}-byte value at byte {pos} ({end - pos} bytes left)")
        return pos + width
    if wire_type == _WT_LEN:
        length, pos = _varint(buf, pos, end, f"{name}: length")
        if length > end - pos:
            raise CodecError(f"{name}: length {length} at byte {pos} exceeds the {end - pos} bytes left")
        _check_len_value(buf, pos, pos + length, name, field, depth)
        return pos + length
    if wire_type in (_WT_SGROUP, _WT_EGROUP):
        raise CodecError(f"{name}: group wire type {wire_type} is not used by the Gateway protocol")
    raise CodecError(f"{name}: invalid wire type {wire_type}")


def _check_len_value(buf: memoryview, pos: int, end: int, name: str,
                     field: FieldDescriptor | None, depth: int) -> None:
    if field is None:
        return
    if field.type == _T.TYPE_MESSAGE and field.message_type is not None:
        _check_message(buf, pos, end, field.message_type, name, depth + 1)
    elif field.type == _T.TYPE_STRING:
        try:
            bytes(buf[pos:end]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"{name}: invalid UTF-8 at byte {pos + exc.start}") from exc


def _varint(buf: memoryview, pos: int, end: int, what: str) -> tuple[int, int]:
    result, shift, start = 0, 0, pos
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise CodecError(f"{what}: varint longer than 10 bytes at byte {start}")
    raise CodecError(f"{what}: truncated varint at byte {start}")
