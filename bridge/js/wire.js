// PeroMesh Gateway protocol: the Envelope in protobuf binary and proto3 JSON.
//
// A small schema-driven protobuf codec (no dependencies, no build step) for
// exactly the messages of proto/peromesh/gateway/v1/envelope.proto. Decoded
// envelopes have the proto3 JSON shape (lowerCamelCase names) with int64
// values as Numbers and bytes as Uint8Array; unknown fields are skipped.

const STR = "string", BYTES = "bytes", INT = "int", BOOL = "bool", MAP = "map";

/** Field number → [name, type, repeated?] for every Gateway message. */
const SCHEMA = {
  Envelope: {
    1: ["id", STR], 2: ["sourceId", STR], 3: ["targetId", STR], 4: ["timestamp", INT], 5: ["traceId", STR],
    10: ["heartbeat", "Heartbeat"], 11: ["hello", "Hello"], 12: ["register", "CapabilityRegister"],
    13: ["welcome", "Welcome"], 20: ["request", "ActionRequest"], 21: ["response", "ActionResponse"],
    30: ["stream", "DataStream"],
  },
  Heartbeat: { 1: ["seq", INT] },
  Hello: {
    1: ["token", STR], 2: ["deviceName", STR], 3: ["clientVersion", STR], 4: ["platform", STR],
    5: ["capabilities", STR, true], 6: ["protocolVersion", INT], 7: ["reminderAcks", BOOL], 8: ["voice", STR],
  },
  Capability: { 1: ["name", STR], 2: ["description", STR], 3: ["params", STR, true], 4: ["paramsSchemaJson", STR],
    5: ["dangerous", BOOL] },
  CapabilityRegister: { 1: ["capabilities", "Capability", true] },
  ActionRequest: { 1: ["actionName", STR], 2: ["params", MAP] },
  ActionResponse: { 1: ["requestId", STR], 2: ["status", INT], 3: ["data", STR], 4: ["errorMsg", STR], 5: ["code", STR] },
  DataStream: {
    1: ["streamId", STR], 2: ["data", BYTES], 3: ["isEnd", BOOL], 4: ["contentType", STR], 5: ["seq", INT],
    6: ["turnId", STR],
  },
  Welcome: {
    1: ["sessionId", STR], 2: ["protocolVersion", INT], 3: ["resumed", BOOL], 4: ["nodeId", STR],
    5: ["heartbeatIntervalMs", INT], 6: ["heartbeatTimeoutMs", INT], 7: ["resumeGraceMs", INT],
    8: ["historyTurns", INT], 9: ["maxFrameBytes", INT], 10: ["serverVersion", STR],
  },
};
/** The payload names of Envelope's oneof. */
export const PAYLOADS = ["heartbeat", "hello", "register", "welcome", "request", "response", "stream"];
const INT64_FIELDS = new Set(["timestamp", "seq"]);
const utf8 = new TextEncoder();
const utf8d = new TextDecoder("utf-8", { fatal: true });

// -- binary decoding ---------------------------------------------------------
class Reader {
  constructor(bytes) { this.b = bytes; this.p = 0; }
  varint() {
    let result = 0, scale = 1, byte;
    do {
      if (this.p >= this.b.length) throw new Error("truncated varint");
      byte = this.b[this.p++];
      result += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte & 0x80);
    return result;
  }
  bytes() {
    const n = this.varint();
    if (n > this.b.length - this.p) throw new Error(`length ${n} exceeds the ${this.b.length - this.p} bytes left`);
    const out = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return out;
  }
  skip(wireType) {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.p += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.p += 4;
    else throw new Error(`unsupported wire type ${wireType}`);
  }
}

function decodeMessage(type, bytes) {
  const fields = SCHEMA[type], out = {}, r = new Reader(bytes);
  while (r.p < bytes.length) {
    const tag = r.varint(), number = Math.floor(tag / 8), wireType = tag & 7;
    const field = fields[number];
    if (!field) { r.skip(wireType); continue; }
    const [name, kind, repeated] = field;
    let value;
    if (kind === INT) value = r.varint();
    else if (kind === BOOL) value = r.varint() !== 0;
    else if (kind === STR) value = utf8d.decode(r.bytes());
    else if (kind === BYTES) value = r.bytes().slice();
    else if (kind === MAP) {
      const entry = decodeMapEntry(r.bytes());
      (out[name] ??= {})[entry[0]] = entry[1];
      continue;
    } else value = decodeMessage(kind, r.bytes());
    if (repeated) (out[name] ??= []).push(value); else out[name] = value;
  }
  return out;
}

function decodeMapEntry(bytes) {
  const r = new Reader(bytes);
  let key = "", value = "";
  while (r.p < bytes.length) {
    const tag = r.varint();
    if (tag === 10) key = utf8d.decode(r.bytes());
    else if (tag === 18) value = utf8d.decode(r.bytes());
    else r.skip(tag & 7);
  }
  return [key, value];
}

// -- binary encoding ---------------------------------------------------------
class Writer {
  constructor() { this.parts = []; this.size = 0; }
  push(bytes) { this.parts.push(bytes); this.size += bytes.length; }
  varint(n) {
    const out = [];
    n = Number(n);
    while (n >= 128) { out.push((n % 128) | 128); n = Math.floor(n / 128); }
    out.push(n);
    this.push(Uint8Array.from(out));
  }
  tag(number, wireType) { this.varint(number * 8 + wireType); }
  lenField(number, bytes) { this.tag(number, 2); this.varint(bytes.length); this.push(bytes); }
  finish() {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const part of this.parts) { out.set(part, at); at += part.length; }
    return out;
  }
}

function encodeMessage(type, message) {
  const fields = SCHEMA[type], w = new Writer();
  for (const number of Object.keys(fields).map(Number).sort((a, b) => a - b)) {
    const [name, kind, repeated] = fields[number];
    const value = message[name];
    if (value === undefined || value === null) continue;
    if (kind === MAP) {
      for (const key of Object.keys(value).sort()) {
        const entry = new Writer();
        if (key) entry.lenField(1, utf8.encode(key));
        if (value[key]) entry.lenField(2, utf8.encode(String(value[key])));
        w.lenField(number, entry.finish());
      }
      continue;
    }
    for (const item of repeated ? value : [value]) encodeValue(w, number, kind, item, repeated);
  }
  return w.finish();
}

function encodeValue(w, number, kind, value, repeated) {
  if (kind === INT || kind === BOOL) {
    const n = kind === BOOL ? (value ? 1 : 0) : Number(value);
    if (n || repeated) { w.tag(number, 0); w.varint(n); }
  } else if (kind === STR) {
    if (value !== "" || repeated) w.lenField(number, utf8.encode(value));
  } else if (kind === BYTES) {
    const bytes = value instanceof Uint8Array ? value : new Uint8Array(value.buffer ?? value, value.byteOffset ?? 0,
      value.byteLength);
    if (bytes.length || repeated) w.lenField(number, bytes);
  } else {
    w.lenField(number, encodeMessage(kind, value));
  }
}

// -- public API ----------------------------------------------------------------
/** Encode an envelope (proto3 JSON shape) as protobuf binary. @returns {Uint8Array} */
export function encodeBinary(envelope) { return encodeMessage("Envelope", envelope); }

/** Decode a protobuf binary envelope. @param {ArrayBuffer|Uint8Array} data */
export function decodeBinary(data) {
  return decodeMessage("Envelope", data instanceof Uint8Array ? data : new Uint8Array(data));
}

/** Encode an envelope as a proto3 JSON text frame (int64 as strings, bytes as base64). */
export function encodeText(envelope) {
  return JSON.stringify(envelope, (key, value) => {
    if (INT64_FIELDS.has(key) && typeof value === "number") return String(value);
    if (value instanceof Uint8Array) return btoa(String.fromCharCode(...value));
    return value;
  });
}

/** Decode a proto3 JSON text frame into the same shape decodeBinary gives. */
export function decodeText(text) {
  const envelope = JSON.parse(text);
  if (envelope.timestamp !== undefined) envelope.timestamp = Number(envelope.timestamp);
  if (envelope.heartbeat?.seq !== undefined) envelope.heartbeat.seq = Number(envelope.heartbeat.seq);
  if (envelope.stream?.seq !== undefined) envelope.stream.seq = Number(envelope.stream.seq);
  return envelope;
}

/** The payload kind of an envelope ("request", "stream", …) or undefined. */
export function payloadOf(envelope) { return PAYLOADS.find((name) => envelope[name] !== undefined); }
