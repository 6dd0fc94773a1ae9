// The conversation as the mesh stored it, shown again after a load or reload: pages of this device's
// session read with the `history:list` action (DialogService.ListTurns), newest page first, each
// page placed above the one before, with a "Load earlier" control at the top while older turns
// exist. A cut answer shows the part the user heard and fades the rest; a question that never got
// an answer says so. Everything here comes from the server, so a cleared browser, another profile
// or another device of the same session sees the same conversation.

import { h, when } from "/static/dom.js";

export const PAGE_SIZE = 20;

export class HistoryView {
  /** @param chat the ChatView whose root gets the history block (first, above live messages) */
  constructor(chat, client) {
    this.chat = chat;
    this.client = client;
    this.token = "";
    this.loading = false;
    this.button = h("button", { class: "small earlier", type: "button", hidden: true,
      onclick: () => this.earlier() }, "Load earlier");
    this.turns = h("div", { class: "history-turns" });
    this.el = h("div", { class: "history", "data-history": "" }, this.button, this.turns);
    this.shown = 0; // turns on screen from the server
  }

  /** The most recent page; false when the mesh cannot answer (the caller may fall back). */
  async load() {
    this.chat.root.prepend(this.el);
    this.el.dataset.state = "loading";
    const ok = await this._page("");
    this.el.dataset.state = ok ? "loaded" : "failed";
    if (ok && this.shown) this.chat.scroll();
    return ok;
  }

  /** The page before the oldest one shown, kept in view (the scroll position does not jump). */
  async earlier() {
    if (!this.token || this.loading) return;
    const root = this.chat.root;
    const fromBottom = root.scrollHeight - root.scrollTop;
    await this._page(this.token);
    root.scrollTop = root.scrollHeight - fromBottom;
  }

  async _page(token) {
    this.loading = true;
    this.button.disabled = true;
    try {
      const page = await this.client.history({ pageSize: PAGE_SIZE, pageToken: token });
      const turns = (page.turns ?? []).filter((t) => !this.chat.turns.has(t.turn_id)); // live ones are on screen
      const block = h("div", { class: "history-page" }, ...turns.flatMap((t) => this._turn(t)));
      this.turns.prepend(block);
      this.shown += turns.length;
      this.token = page.next_page_token ?? "";
      this.el.dataset.turns = String(this.shown);
      if (this.shown) this.chat.root.querySelector(".empty")?.remove();
      return true;
    } catch (err) {
      if (token) this.chat.divider(`could not load earlier messages: ${err.message ?? err}`);
      return false;
    } finally {
      this.loading = false;
      this.button.disabled = false;
      this.button.hidden = !this.token;
    }
  }

  /** One stored turn as message elements (not mapped as live turns: nothing streams into them). */
  _turn(t) {
    const out = [];
    const at = t.create_time ? when(t.create_time) : "";
    if (t.user_text) {
      const user = this._message("user", t.user_text, t, at);
      if (t.abandoned) this.chat.chip(user, "no answer", "superseded");
      out.push(user.el);
    }
    if (t.assistant_text) {
      const view = this._message("assistant", t.assistant_text, t, at);
      view.el.dataset.turn = t.turn_id;
      if (t.interrupted) {
        this.chat.mark(view, "interrupted");
        this.chat.showHeard(view, t.heard_text ?? "");
        this.chat.chip(view, heardChip(t), "cut");
      }
      out.push(view.el);
    }
    return out;
  }

  _message(role, text, t, at) {
    const bubble = h("div", { class: "bubble" }, text);
    const meta = h("div", { class: "meta" });
    const el = h("div", { class: `msg ${role} restored`, title: at, dataset: { storedTurn: t.turn_id } }, bubble, meta);
    return { el, bubble, meta, text, completed: true, ended: true, key: t.turn_id };
  }
}

/** "interrupted · heard 40%" (by characters): how much of the answer reached the user. */
function heardChip(t) {
  const total = t.assistant_text.length;
  const heard = Math.min(total, (t.heard_text ?? "").length);
  return total ? `interrupted · heard ${Math.round((100 * heard) / total)}%` : "interrupted";
}
