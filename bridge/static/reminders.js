// The reminders panel: upcoming reminders (cancellable) and recent ones (fired, done, cancelled).
// Loaded with reminder:list on every (re)connect; kept current by `schedule_update` {operation,
// data} broadcasts and `reminder_trigger` (a recurring reminder fires and stays upcoming).

import { h, parseJson, when } from "/static/dom.js";

const RECENT = 8; // recent reminders shown
const MAX_KEPT = 200; // reminders kept in memory (the oldest inactive ones are forgotten first)

export class RemindersPanel {
  constructor(root, client, toast) {
    this.root = root;
    this.client = client;
    this.toast = toast;
    this.reminders = new Map(); // id → reminder (server shape) + firedAt when it fired while we watched
    this.upcoming = root.querySelector("[data-upcoming]");
    this.recent = root.querySelector("[data-recent]");
    client.on("schedule_update", (e) => this.apply(parseJson(e.params.data)));
    client.on("reminder_trigger", (e) => this.fired(e.params));
  }

  async load() {
    try {
      const response = await this.client.request("master", "reminder:list", { include_inactive: true });
      this.reminders = new Map(parseJson(response.data, []).map((r) => [r.id, r]));
      this.render();
    } catch (err) {
      this.root.dataset.error = String(err.message ?? err);
    }
  }

  apply(reminder) {
    if (!reminder?.id) return;
    this.reminders.set(reminder.id, { ...this.reminders.get(reminder.id), ...reminder });
    this.trim();
    this.render();
  }

  fired(trigger) {
    const known = this.reminders.get(trigger.id);
    if (!known) return; // not listed yet: the schedule_update (or the next load) brings it
    known.firedAt = trigger.fired_time || new Date().toISOString();
    this.render();
  }

  async cancel(id) {
    try {
      const response = await this.client.request("master", "reminder:cancel", { id });
      this.apply(parseJson(response.data));
    } catch (err) {
      this.toast(`cancel: ${err.message ?? err}`);
    }
  }

  trim() {
    if (this.reminders.size <= MAX_KEPT) return;
    const inactive = [...this.reminders.values()].filter((r) => r.state !== "active")
      .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    for (const r of inactive.slice(0, this.reminders.size - MAX_KEPT)) this.reminders.delete(r.id);
  }

  render() {
    const all = [...this.reminders.values()];
    const due = (r) => r.next_due_time || r.due_time || "";
    const upcoming = all.filter((r) => r.state === "active").sort((a, b) => due(a).localeCompare(due(b)));
    const recent = all.filter((r) => r.state !== "active" || r.firedAt)
      .sort((a, b) => String(b.firedAt || due(b) || b.created_at).localeCompare(String(a.firedAt || due(a) || a.created_at)))
      .slice(0, RECENT);
    this.upcoming.replaceChildren(...(upcoming.length ? upcoming.map((r) => this.item(r, true))
      : [h("li", { class: "muted" }, "Nothing scheduled. Try “remind me in 10 minutes to stretch”.")]));
    this.recent.replaceChildren(...recent.map((r) => this.item(r, false)));
    this.recent.hidden = !recent.length;
    this.root.querySelector("[data-count]").textContent = upcoming.length ? `${upcoming.length} upcoming` : "";
  }

  item(r, upcoming) {
    const schedule = r.cron ? `${r.cron} · next ${when(r.next_due_time)}` : when(r.next_due_time || r.due_time);
    const state = upcoming ? "" : r.state === "active" ? `fired ${when(r.firedAt)}` : r.state;
    return h("li", { class: `reminder ${r.state}`, dataset: { reminderId: r.id, state: r.state } },
      h("div", { class: "what" }, r.content),
      h("div", { class: "sub" }, h("span", {}, schedule), state ? h("span", { class: "state" }, state) : null),
      upcoming ? h("button", { class: "small", type: "button", onclick: () => this.cancel(r.id) }, "Cancel") : null);
  }
}
