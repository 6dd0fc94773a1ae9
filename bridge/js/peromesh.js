// PeroMesh JS SDK: talk to the mesh through the bridge (Gateway protocol over WebSocket).
//
//   import { PeroMeshClient } from "/js/peromesh.js";
//   const mesh = new PeroMeshClient({ url: "ws://127.0.0.1:8765/ws", token, deviceId: "web-1" });
//   mesh.on("assistant_delta", (e) => print(e.params.text_delta));
//   mesh.on("audio_chunk", (e) => player.push(e.pcm));
//   await mesh.connect();
//   const { turnId } = await mesh.sendText("你好");
//   mesh.interrupt();
//
// Control messages go as JSON text frames (readable in devtools); audio comes
// and goes as binary protobuf frames. The client reconnects by itself
// (exponential backoff with full jitter) and re-sends its hello with the same
// device id, so a reconnect inside the mesh's grace window resumes the same
// dialog session. Events of turns that are not current are dropped: a turn
// becomes current when its first event (or the answer to sendText) arrives;
// once interrupted, only its closing events (assistant_final, metrics,
// state_update, audio_cancel) still pass. An audio_cancel always passes, also
// for an older turn whose audio may still be playing (voice barge-in).
//
// Reminders: the hello sets reminderAcks, so the mesh sends a `reminder_trigger` again (at the
// next connect) until this client acknowledges it. The SDK shows each cursor once: the
// `reminder_trigger` (and `action`) handlers run for a cursor it has not seen, and once they
// returned (the app showed or played it) it sends `reminder_ack {cursor}`; a cursor seen before
// is acknowledged again without reaching the handlers. With `reminderAcks: false` the hello
// leaves it unset and the bridge acknowledges what it wrote to the socket.
//
// Types: see peromesh.d.ts next to this file.

import { decodeBinary, decodeText, encodeBinary, encodeText, payloadOf } from "./wire.js";

export { decodeBinary, decodeText, encodeBinary, encodeText, payloadOf } from "./wire.js";

export const PROTOCOL_VERSION = 1;
export const SDK_VERSION = "0.1.0";
const TURN_EVENTS = new Set(["state_update", "assistant_delta", "assistant_final", "audio_begin", "audio_end",
  "audio_cancel", "metrics", "transcription", "tool_call", "tool_result", "voice_update", "text_response"]);
const CLOSING_EVENTS = new Set(["assistant_final", "metrics", "state_update", "audio_cancel", "text_response",
  "voice_update"]);
const FINAL_CLOSE_CODES = new Set([4400, 4401, 4409]); // bad hello, bad token, replaced: reconnecting cannot help
const REMINDER_TRIGGER = "reminder_trigger";
const SEEN_CURSORS = 1000; // reminder cursors remembered to drop a replay that was shown already

let counter = 0;
const newId = (prefix) => `${prefix}-${Date.now().toString(36)}-${(++counter).toString(36)}`;

export class PeroMeshClient {
  /** @param {import("./peromesh").ClientOptions} options */
  constructor(options) {
    this.options = {
      deviceName: options.deviceId, platform: "web", capabilities: [], requestTimeoutMs: 10000, reminderAcks: true,
      backoff: { initialMs: 500, maxMs: 15000, factor: 2 }, WebSocket: globalThis.WebSocket, ...options,
    };
    if (!this.options.url || !this.options.deviceId) throw new Error("url and deviceId are required");
    /** @type {"idle"|"connecting"|"open"|"reconnecting"|"closed"} */
    this.connectionState = "idle";
    this.welcome = null;
    this.currentTurn = "";
    this.attempt = 0;
    this._handlers = new Map();
    this._pending = new Map();
    this._cancelled = new Set();
    this._finished = new Set();
    this._ws = null;
    this._timers = new Set();
    this._heartbeatSeq = 0;
    this._lastHeard = 0;
    this._userClosed = false;
    this._seenCursors = new Set(); // insertion order: the oldest is forgotten first
  }

  // -- events ------------------------------------------------------------------
  /** Subscribe to an event; returns a function that unsubscribes. */
  on(event, handler) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(handler);
    return () => this.off(event, handler);
  }

  off(event, handler) { this._handlers.get(event)?.delete(handler); }

  _emit(event, payload) {
    for (const handler of [...(this._handlers.get(event) ?? []), ...(this._handlers.get("*") ?? [])]) {
      try { handler(payload, event); } catch (err) { console.error(`peromesh: ${event} handler failed`, err); }
    }
  }

  // -- connection ----------------------------------------------------------------
  /** Connect (and keep reconnecting); resolves with the first welcome, rejects if the hello is refused. */
  connect() {
    this._userClosed = false;
    return new Promise((resolve, reject) => {
      const offWelcome = this.on("welcome", (welcome) => { offWelcome(); offFail(); resolve(welcome); });
      const offFail = this.on("connection", (e) => {
        if (e.state === "closed") { offWelcome(); offFail(); reject(new Error(e.reason || "connection closed")); }
      });
      this._open();
    });
  }

  /**
   * Drop the connection and connect again at once, e.g. after changing `options.voice` (a hello
   * setting, so it takes a new connection). The same device id inside the mesh's grace window
   * resumes the same session. Pending requests are rejected; resolves with the new welcome.
   */
  async reconnect() {
    const old = this._ws;
    this._ws = null; // its close event is no longer ours (see _onClose)
    this._clearTimers();
    this._failPending(new Error("reconnecting"));
    this.attempt = 0;
    if (old && old.readyState < 2) {
      await new Promise((resolve) => {
        old.addEventListener("close", resolve, { once: true });
        setTimeout(resolve, 2000); // the bridge replaces a connection that is slow to close anyway
        old.close(1000, "reconnecting");
      });
    }
    return this.connect();
  }

  /** Close for good (no reconnect); pending requests are rejected. */
  close() {
    this._userClosed = true;
    this._clearTimers();
    this._ws?.close(1000, "client closed");
    this._setState("closed", { reason: "closed by the client" });
  }

  _open() {
    this._setState(this.attempt ? "reconnecting" : "connecting");
    const ws = new this.options.WebSocket(this.options.url);
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    ws.onopen = () => this._sendFrame({
      id: newId("hello"), sourceId: this.options.deviceId, targetId: "master", timestamp: Date.now(),
      hello: { token: this.options.token, deviceName: this.options.deviceName, clientVersion: SDK_VERSION,
        platform: this.options.platform, capabilities: this.options.capabilities, protocolVersion: PROTOCOL_VERSION,
        reminderAcks: !!this.options.reminderAcks, voice: this.options.voice || "" },
    });
    ws.onmessage = (message) => this._onFrame(message.data);
    ws.onclose = (event) => this._onClose(ws, event.code, event.reason);
  }

  _onClose(ws, code, reason) {
    if (ws !== this._ws) return;
    this._clearTimers();
    this._failPending(new Error(`connection closed (${code}${reason ? `: ${reason}` : ""})`));
    if (this._userClosed) return;
    if (FINAL_CLOSE_CODES.has(code)) {
      this._setState("closed", { code, reason });
      return;
    }
    const { initialMs, maxMs, factor } = this.options.backoff;
    const base = Math.min(maxMs, initialMs * factor ** this.attempt);
    const delayMs = Math.round(base / 2 + Math.random() * base / 2); // "equal jitter": never 0, never herds
    this.attempt += 1;
    this._setState("reconnecting", { code, reason, delayMs });
    this._later(() => this._open(), delayMs);
  }

  _setState(state, detail = {}) {
    this.connectionState = state;
    this._emit("connection", { state, attempt: this.attempt, ...detail });
  }

  // -- sending -------------------------------------------------------------------
  _sendFrame(envelope) {
    if (!this._ws || this._ws.readyState !== 1) throw new Error(`not connected (${this.connectionState})`);
    this._ws.send(envelope.stream ? encodeBinary(envelope) : encodeText(envelope));
  }

  _envelope(target, fields) {
    return { id: newId("m"), sourceId: this.options.deviceId, targetId: target, timestamp: Date.now(), ...fields };
  }

  /** Send an action and wait for its ActionResponse (rejects on error status, timeout or disconnect). */
  request(target, action, params = {}, { timeoutMs = this.options.requestTimeoutMs } = {}) {
    const envelope = this._envelope(target, { request: { actionName: action, params: stringify(params) } });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(envelope.id);
        reject(new Error(`${action}: no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pending.set(envelope.id, { resolve, reject, timer, action });
      try { this._sendFrame(envelope); } catch (err) { clearTimeout(timer); this._pending.delete(envelope.id); reject(err); }
    });
  }

  /** Send an action without waiting for an answer. */
  send(target, action, params = {}) {
    this._sendFrame(this._envelope(target, { request: { actionName: action, params: stringify(params) } }));
  }

  /** Say something; resolves with the turn id once the mesh has started the turn.
   * A turn still running is cut by the mesh; its remaining content is dropped here at once. */
  async sendText(text) {
    if (this.currentTurn && !this._finished.has(this.currentTurn)) this._cancelled.add(this.currentTurn);
    const response = await this.request("master", "chat", { text });
    const turnId = JSON.parse(response.data || "{}").turn_id ?? "";
    if (turnId && !this._finished.has(turnId)) this._adoptTurn(turnId);
    return { turnId };
  }

  /**
   * One page of this device's conversation as the mesh stored it (the `history:list` action):
   * `{ turns: [{ turn_id, user_text, assistant_text, interrupted, heard_text, abandoned, create_time }],
   * next_page_token }`, turns oldest first; pass `pageToken` (a previous next_page_token) for older ones.
   */
  async history({ pageSize = 20, pageToken = "" } = {}) {
    const response = await this.request("master", "history:list",
      pageToken ? { page_size: pageSize, page_token: pageToken } : { page_size: pageSize });
    return JSON.parse(response.data || "{}");
  }

  /**
   * The voices the mesh can speak answers in (the `voices:list` action, the TTS server's installed
   * voices): `{ voices: [{ name, engine, languages, display_name, neural }] }`, preferred first.
   * `languages` (e.g. ["en", "zh"]) keeps those that speak one of them. A name goes into
   * `options.voice` (then `reconnect()`); it speaks the parts of an answer in its languages, the
   * best voice per language speaks the rest.
   */
  async voices({ languages = [] } = {}) {
    const response = await this.request("master", "voices:list",
      languages.length ? { languages: languages.join(",") } : {});
    return JSON.parse(response.data || "{}");
  }

  /**
   * Barge in: end the current (or the given) turn; its audio and text stop at once on this side too.
   * `playedMs`: how much of its audio you had played, so the mesh stores what was really heard (and
   * corrects an answer that had finished on the server but was still playing).
   */
  interrupt(turnId = this.currentTurn, { playedMs = null } = {}) {
    if (turnId) this._cancelled.add(turnId);
    this._emit("interrupt", { turnId });
    const params = turnId ? { turn_id: turnId } : {};
    if (Number.isFinite(playedMs) && playedMs >= 0) params.played_ms = String(Math.round(playedMs));
    return this.request("master", "interrupt", params).catch((err) => {
      this._emit("error", { params: { code: "INTERRUPT_FAILED", message: String(err.message ?? err) } });
    });
  }

  /**
   * Stream microphone audio to the mesh as 16 kHz PCM16 DataStream chunks (4 KiB).
   * `source` is a MediaStream (browser) or an async iterable of Int16Array/ArrayBuffer chunks.
   * @returns {{ stop: () => Promise<void>, streamId: string }}
   */
  sendAudio(source, { sampleRate = 16000, chunkBytes = 4096 } = {}) {
    const streamId = newId("mic");
    let seq = 0, stopped = false, buffer = new Uint8Array(0), cleanup = async () => {};
    const contentType = `audio/pcm;rate=${sampleRate}`;
    const flush = (isEnd) => {
      while (buffer.length >= chunkBytes || (isEnd && buffer.length)) {
        const data = buffer.slice(0, chunkBytes);
        buffer = buffer.slice(data.length);
        this._sendFrame(this._envelope("master", { stream: { streamId, data, contentType, seq: seq++ } }));
      }
      if (isEnd) this._sendFrame(this._envelope("master", { stream: { streamId, isEnd: true, contentType, seq: seq++ } }));
    };
    const push = (chunk) => {
      if (stopped) return;
      const bytes = new Uint8Array(chunk.buffer ?? chunk, chunk.byteOffset ?? 0, chunk.byteLength);
      const joined = new Uint8Array(buffer.length + bytes.length);
      joined.set(buffer); joined.set(bytes, buffer.length);
      buffer = joined;
      flush(false);
    };
    if (typeof MediaStream !== "undefined" && source instanceof MediaStream) {
      cleanup = captureMicrophone(source, sampleRate, push);
    } else {
      (async () => { for await (const chunk of source) push(chunk); })();
    }
    return {
      streamId,
      stop: async () => {
        if (stopped) return;
        await (await cleanup)();
        flush(true);
        stopped = true;
      },
    };
  }

  // -- receiving -----------------------------------------------------------------
  _onFrame(data) {
    let envelope;
    try {
      envelope = typeof data === "string" ? decodeText(data) : decodeBinary(data);
    } catch (err) {
      this._emit("error", { params: { code: "BAD_FRAME", message: String(err.message ?? err) } });
      return;
    }
    this._lastHeard = Date.now();
    const kind = payloadOf(envelope);
    if (kind === "welcome") this._onWelcome(envelope.welcome);
    else if (kind === "heartbeat") this._emit("heartbeat", { seq: envelope.heartbeat.seq ?? 0, rttMs: Date.now() - (this._heartbeatSentAt ?? Date.now()) });
    else if (kind === "response") this._onResponse(envelope);
    else if (kind === "stream") this._onStream(envelope);
    else if (kind === "request") this._onRequest(envelope);
  }

  _onWelcome(welcome) {
    this.welcome = welcome;
    this.attempt = 0;
    this._setState("open", { sessionId: welcome.sessionId, resumed: !!welcome.resumed });
    this._emit("welcome", welcome);
    const every = welcome.heartbeatIntervalMs || 10000, timeout = welcome.heartbeatTimeoutMs || 3 * every;
    this._lastHeard = Date.now();
    this._every(() => {
      if (Date.now() - this._lastHeard > timeout) { this._ws?.close(4000, "heartbeat timeout"); return; }
      this._heartbeatSentAt = Date.now();
      this._sendFrame(this._envelope("master", { heartbeat: { seq: ++this._heartbeatSeq } }));
    }, Math.max(250, every / 2));
  }

  _onResponse(envelope) {
    const response = envelope.response;
    const pending = this._pending.get(response.requestId);
    if (!pending) {
      if (response.status) this._emit("error", { params: { code: response.code || "ERROR", message: response.errorMsg } });
      this._emit("response", response);
      return;
    }
    this._pending.delete(response.requestId);
    clearTimeout(pending.timer);
    if (response.status) {
      const error = new Error(response.errorMsg || `${pending.action} failed`);
      error.code = response.code;
      pending.reject(error);
    } else pending.resolve(response);
  }

  _onRequest(envelope) {
    const name = envelope.request.actionName;
    const params = envelope.request.params ?? {};
    const event = { name, params, turnId: params.turn_id ?? "", source: envelope.sourceId, envelope };
    if (TURN_EVENTS.has(name)) {
      if (!this._accept(event.turnId, name)) return;
      if (name === "audio_cancel") this._cancelled.add(event.turnId);
      if (name === "assistant_final" || name === "audio_cancel") this._finished.add(event.turnId);
    }
    const reminder = name === REMINDER_TRIGGER && params.cursor ? params.cursor : "";
    if (reminder && this._seenCursors.has(reminder)) { this._ackReminder(reminder); return; } // shown already
    this._emit(name, event);
    if (!TURN_EVENTS.has(name)) this._emit("action", event);
    if (reminder) this._ackReminder(reminder); // after the handlers showed it
  }

  /** Remember a shown reminder's cursor and acknowledge it (the mesh then stops re-sending it). */
  _ackReminder(cursor) {
    this._seenCursors.delete(cursor);
    this._seenCursors.add(cursor);
    if (this._seenCursors.size > SEEN_CURSORS) this._seenCursors.delete(this._seenCursors.values().next().value);
    if (!this.options.reminderAcks) return;
    this.request("master", "reminder_ack", { cursor }).catch((err) => {
      // not recorded: the mesh sends the trigger again at the next connect and it is acknowledged then
      console.warn(`peromesh: reminder_ack ${cursor} failed`, err);
    });
  }

  _onStream(envelope) {
    const s = envelope.stream;
    const turnId = s.turnId || s.streamId || "";
    if (!this._accept(turnId, "audio_chunk")) return;
    this._emit("audio_chunk", { turnId, seq: s.seq ?? 0, isEnd: !!s.isEnd, contentType: s.contentType ?? "",
      pcm: s.data ?? new Uint8Array(0) });
  }

  /** Turn filter: adopt new turns, drop stale ones, and after a cut pass only closing events. */
  _accept(turnId, name) {
    if (!turnId || name === "audio_cancel") return true; // a cancel only ever silences: never stale
    if (turnId !== this.currentTurn) {
      if (this._finished.has(turnId) || this._cancelled.has(turnId)) return false; // an older turn: stale
      this._adoptTurn(turnId);
    }
    return !this._cancelled.has(turnId) || CLOSING_EVENTS.has(name);
  }

  _adoptTurn(turnId) {
    if (this.currentTurn === turnId) return;
    if (this.currentTurn) this._finished.add(this.currentTurn);
    this.currentTurn = turnId;
    this._emit("turn", { turnId });
  }

  // -- timers ----------------------------------------------------------------------
  _later(fn, ms) { const t = setTimeout(() => { this._timers.delete(t); fn(); }, ms); this._timers.add(t); }
  _every(fn, ms) { const t = setInterval(() => { try { fn(); } catch { /* closed meanwhile */ } }, ms); this._timers.add(t); }
  _clearTimers() { for (const t of this._timers) { clearTimeout(t); clearInterval(t); } this._timers.clear(); }
  _failPending(error) {
    for (const [id, pending] of this._pending) { clearTimeout(pending.timer); pending.reject(error); this._pending.delete(id); }
  }
}

function stringify(params) {
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
}

/** Capture a MediaStream as PCM16 at `rate` Hz; returns (a promise of) the cleanup function. */
async function captureMicrophone(stream, rate, push) {
  const context = new AudioContext({ sampleRate: rate });
  const source = context.createMediaStreamSource(stream);
  const node = context.createScriptProcessor(2048, 1, 1); // widely supported; 2048 samples ≈ 128 ms at 16 kHz
  node.onaudioprocess = (event) => {
    const input = event.inputBuffer.getChannelData(0);
    const pcm = new Int16Array(input.length);
    for (let i = 0; i < input.length; i++) pcm[i] = Math.max(-1, Math.min(1, input[i])) * 0x7fff;
    push(pcm);
  };
  source.connect(node);
  node.connect(context.destination);
  return async () => { node.disconnect(); source.disconnect(); await context.close(); };
}
