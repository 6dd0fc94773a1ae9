// The recent conversation, kept in this browser profile's localStorage (per device id): the fallback
// a reload shows only while the mesh cannot be asked. The record itself is the mesh's history
// (DialogService.ListTurns through the `history:list` action, history.js).
// Only finished messages are stored; at most MAX_MESSAGES, each at most MAX_CHARS.

const MAX_MESSAGES = 60;
const MAX_CHARS = 4000;

export class Transcript {
  constructor(deviceId, storage = globalThis.localStorage) {
    this.key = `peromesh.history.${deviceId}`;
    this.storage = storage;
    const saved = this._read();
    this.sessionId = saved.sessionId ?? "";
    this.messages = Array.isArray(saved.messages) ? saved.messages.slice(-MAX_MESSAGES) : [];
  }

  /** Record a finished message; `key` (a turn id) replaces an earlier record of the same turn. */
  put(message) {
    const entry = { ...message, text: String(message.text ?? "").slice(0, MAX_CHARS), at: message.at ?? Date.now() };
    const at = entry.key ? this.messages.findIndex((m) => m.key === entry.key && m.role === entry.role) : -1;
    if (at >= 0) this.messages[at] = { ...this.messages[at], ...entry };
    else this.messages.push(entry);
    this.messages = this.messages.slice(-MAX_MESSAGES);
    this._write();
  }

  /** Note the session the mesh gave us; true when it is not the one the stored messages belong to. */
  session(sessionId) {
    const changed = !!this.sessionId && this.sessionId !== sessionId;
    this.sessionId = sessionId;
    if (changed) this.messages.push({ role: "divider", text: "new session", at: Date.now() });
    this._write();
    return changed;
  }

  _read() {
    try { return JSON.parse(this.storage.getItem(this.key) || "{}") ?? {}; } catch { return {}; }
  }

  _write() {
    try {
      this.storage.setItem(this.key, JSON.stringify({ sessionId: this.sessionId, messages: this.messages }));
    } catch { /* storage full or disabled: the page still works, a reload just starts empty */ }
  }
}
