// The conversation view: message bubbles, one per user message and one per assistant turn.
//
// How an ended answer is marked: "interrupted" only when the user cut it (Stop, Escape, talking
// over it); "superseded" when the next message ended it before its text was complete; nothing
// when its text was complete and only its speech stopped because the next message was sent.
// After a reload the conversation comes back from the mesh (history.js); finished messages also go to
// the browser's Transcript, shown only when the mesh cannot answer (`restore`, removed by `dropLocal`
// once the mesh's history arrives).

import { h } from "/static/dom.js";

const MAX_TURN_VIEWS = 200; // turn id → view entries kept (older bubbles stay on screen, unmapped)

const ms = (v) => {
  const n = Number(v);
  if (n >= 1000) return `${(n / 1000).toFixed(2)} s`;
  return n < 1 ? `${n.toFixed(2)} ms` : `${Math.round(n)} ms`;
};

export class ChatView {
  constructor(root, transcript) {
    this.root = root;
    this.transcript = transcript;
    this.turns = new Map(); // turn id → view { el, bubble, meta, text, completed, ended, key }
    this.pending = null; // the assistant bubble shown while we wait for the turn id
    this.cut = new Set(); // turns the user cut
    this.voiceLabel = (name) => name; // voice name → what people read (the voice menu sets it)
  }

  add(role, text = "") {
    this.root.querySelector(".empty")?.remove();
    const bubble = h("div", { class: "bubble" }, text);
    const meta = h("div", { class: "meta" });
    const el = h("div", { class: `msg ${role}` }, bubble, meta);
    this.root.append(el);
    this.scroll();
    return { el, bubble, meta, text, completed: false, ended: false, key: "" };
  }

  /** A user message (recorded at once) and the assistant bubble that waits for its turn. */
  userSays(text) {
    this.add("user", text);
    this.transcript.put({ role: "user", text });
    this.pending = this.add("assistant");
    this.pending.el.classList.add("streaming");
    return this.pending;
  }

  turn(turnId) {
    let view = this.turns.get(turnId);
    if (!view) {
      view = this.pending ?? this.add("assistant");
      this.pending = null;
      view.key = turnId;
      view.el.dataset.turn = turnId;
      view.el.classList.add("streaming");
      this.turns.set(turnId, view);
      if (this.turns.size > MAX_TURN_VIEWS) this.turns.delete(this.turns.keys().next().value);
    }
    return view;
  }

  delta(turnId, text) {
    const view = this.turn(turnId);
    view.text += text;
    view.bubble.textContent = view.text;
    this.scroll();
  }

  final(turnId, params) {
    const view = this.turn(turnId);
    view.el.classList.remove("streaming");
    const interrupted = params.interrupted === "true";
    if (params.text) view.text = params.text;
    if (!interrupted) {
      view.completed = true;
      view.bubble.textContent = view.text;
    } else if (this.cut.has(turnId)) {
      this.mark(view, "interrupted");
      this.showHeard(view, params.heard_text ?? "");
    } else if (!view.completed) {
      this.mark(view, "superseded");
      view.bubble.textContent = view.text || "…";
    }
    this.save(view, { heard: params.heard_text });
  }

  metrics(turnId, p) {
    const view = this.turn(turnId);
    view.ended = true;
    // Cut here while the mesh was closing the turn (its final complete): only the speech playing
    // here was cut, as in userCut() for a turn that had already ended.
    if (this.cut.has(turnId) && !view.mark) {
      this.mark(view, "interrupted");
      this.save(view);
    }
    view.meta.replaceChildren();
    if (Number(p.t_first_delta_ms)) this.chip(view, `first token ${ms(p.t_first_delta_ms)}`);
    if (Number(p.t_first_audio_ms)) this.chip(view, `first audio ${ms(p.t_first_audio_ms)}`);
    this.chip(view, `total ${ms(p.t_total_ms)}`);
    if (view.mark === "interrupted") this.chip(view, `interrupted · cut in ${ms(p.t_interrupt_ms)}`, "cut");
    if (view.mark === "superseded") this.chip(view, "superseded by your next message", "superseded");
    this.voiceChip(view);
  }

  /** The voices that spoke the turn's audio (its audio_end), shown beside its timings. */
  spokenBy(turnId, voices) {
    const view = this.turn(turnId);
    view.voices = voices;
    view.el.dataset.voices = voices.join(",");
    if (view.ended) this.voiceChip(view); // metrics came first: add it to their chips
  }

  voiceChip(view) {
    if (!view.voices?.length || view.meta.querySelector(".chip.voice")) return;
    this.chip(view, `voice: ${view.voices.map((name) => this.voiceLabel(name)).join(" + ")}`, "voice");
  }

  /** The user cut this turn (Stop, Escape, speaking over it). */
  userCut(turnId) {
    if (!turnId) return;
    this.cut.add(turnId);
    if (this.cut.size > MAX_TURN_VIEWS) this.cut.delete(this.cut.values().next().value);
    const view = this.turns.get(turnId);
    if (view?.ended && !view.mark) { // the mesh had finished; only the speech playing here was cut
      this.mark(view, "interrupted");
      this.chip(view, "interrupted", "cut");
      this.save(view);
    }
  }

  /** An error answers a turn (or the pending message): the bubble says so, without the cursor. */
  error(turnId, message) {
    const view = turnId ? this.turns.get(turnId) : this.pending;
    if (!view || view.text) return false; // a turn that already answered keeps its text (toast instead)
    if (view === this.pending) this.pending = null;
    view.el.classList.remove("streaming");
    view.el.classList.add("error");
    view.bubble.textContent = message;
    return true;
  }

  /** The connection is gone: nothing streams any more. */
  settle() {
    for (const el of this.root.querySelectorAll(".msg.streaming")) el.classList.remove("streaming");
    if (this.pending && !this.pending.text) this.pending.el.remove();
    this.pending = null;
  }

  divider(text) {
    const el = h("div", { class: "divider" }, h("span", {}, text));
    this.root.append(el);
    this.scroll();
    return el;
  }

  /** Show what this browser's transcript kept from before the reload (the mesh could not be asked). */
  restore() {
    for (const m of this.transcript.messages) {
      if (m.role === "divider") { this.divider(m.text).classList.add("local"); continue; }
      const view = this.add(m.role, m.text);
      view.el.classList.add("restored", "local");
      if (m.mark) {
        this.mark(view, m.mark);
        if (m.mark === "interrupted") this.showHeard(view, m.heard ?? "");
        this.chip(view, m.mark, m.mark === "interrupted" ? "cut" : "superseded");
      }
    }
    if (this.transcript.messages.length) this.divider("restored from this browser").classList.add("local");
  }

  /** Remove the browser's copy: the mesh's own history is on screen now. */
  dropLocal() {
    for (const el of this.root.querySelectorAll(".local")) el.remove();
  }

  mark(view, kind) {
    view.mark = kind;
    view.el.classList.add(kind);
  }

  /** An interrupted answer: the part that was heard, then the unheard rest faded (all of it when
   * nothing was heard). */
  showHeard(view, heard) {
    const text = view.text;
    if (text && text.startsWith(heard) && heard.length < text.length) {
      view.bubble.replaceChildren(heard, h("span", { class: "unheard", title: "not heard" }, text.slice(heard.length)));
    } else {
      view.bubble.textContent = text || "…";
    }
  }

  save(view, extra = {}) {
    if (!view.key || !view.text) return;
    this.transcript.put({ role: "assistant", key: view.key, text: view.text, mark: view.mark ?? "",
      ...(extra.heard !== undefined ? { heard: extra.heard } : {}) });
  }

  chip(view, text, cls = "") {
    view.meta.append(h("span", { class: `chip ${cls}` }, text));
  }

  scroll() { this.root.scrollTop = this.root.scrollHeight; }
}
