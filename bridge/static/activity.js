// The activity list: broadcasts and routed actions from the mesh, as sentences for people.
// system_stats is not listed (it feeds the system chart every few seconds); everything else is,
// newest first, at most MAX_ITEMS.

import { h, parseJson, when } from "/static/dom.js";

const MAX_ITEMS = 50;
const QUIET = new Set(["system_stats"]);
const TASK_VERBS = { added: "Task added", completed: "Task completed", reopened: "Task reopened", deleted: "Task deleted" };
const SCHEDULE_VERBS = { create: "Reminder set", cancel: "Reminder cancelled", done: "Reminder done" };

/** A person-readable sentence for an action event, or null when it is not worth listing. */
export function describe(event) {
  const p = event.params ?? {};
  switch (event.name) {
    case "task:update": {
      const task = parseJson(p.task, {});
      const verb = TASK_VERBS[p.operation];
      return verb ? `${verb}: “${task.title ?? "?"}”` : null; // "snapshot" etc.: not news
    }
    case "schedule_update": {
      const r = parseJson(p.data, {});
      const verb = SCHEDULE_VERBS[p.operation] ?? "Reminder changed";
      const due = p.operation === "create" && (r.next_due_time || r.due_time) ? ` for ${when(r.next_due_time || r.due_time)}` : "";
      return `${verb}${due}: “${r.content ?? "?"}”`;
    }
    case "reminder_trigger":
      return p.status === "missed" ? `Missed reminder (due ${when(p.due_time)}): “${p.content}”` : `⏰ Reminder: “${p.content}”`;
    default: {
      const shown = Object.entries(p).filter(([k]) => k !== "turn_id").slice(0, 4)
        .map(([k, v]) => `${k.replaceAll("_", " ")}: ${String(v).slice(0, 60)}`).join(", ");
      return `${event.name.replaceAll("_", " ").replaceAll(":", " ")}${shown ? ` — ${shown}` : ""}`;
    }
  }
}

export class ActivityLog {
  constructor(list) { this.list = list; }

  add(event) {
    if (QUIET.has(event.name)) return;
    const text = describe(event);
    if (!text) return;
    this.list.querySelector(".muted")?.remove();
    const from = event.source && event.source !== "master" ? `from ${event.source} · ` : "";
    this.list.prepend(h("li", { dataset: { action: event.name } },
      h("div", { class: "text" }, text), h("div", { class: "when" }, `${from}${new Date().toLocaleTimeString()}`)));
    while (this.list.children.length > MAX_ITEMS) this.list.lastChild.remove();
  }
}
