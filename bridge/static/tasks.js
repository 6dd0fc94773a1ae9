// The tasks panel: a live to-do list over the gateway actions task:list/add/complete/reopen/delete.
// The list is loaded on every (re)connect and kept current by `task:update` broadcasts, which
// reach every device, this one included (so a change made by chat or by another device shows here).

import { h, parseJson, when } from "/static/dom.js";

const MAX_SHOWN = 200; // the list shows at most this many (open ones first)

export class TasksPanel {
  constructor(root, client, toast) {
    this.root = root;
    this.client = client;
    this.toast = toast;
    this.tasks = new Map(); // id → task (as the server sent it)
    this.list = root.querySelector("[data-list]");
    this.form = root.querySelector("form");
    this.input = this.form.querySelector("input");
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.add(); });
    client.on("task:update", (e) => this.apply(e.params.operation, parseJson(e.params.task)));
  }

  /** Load the whole list (on connect: changes made while this tab was away are then included). */
  async load() {
    try {
      const response = await this.client.request("master", "task:list", { include_completed: true });
      this.tasks = new Map(parseJson(response.data, []).map((t) => [t.id, t]));
      this.render();
    } catch (err) {
      this.root.dataset.error = String(err.message ?? err);
    }
  }

  apply(operation, task) {
    if (!task?.id) return;
    if (operation === "deleted") this.tasks.delete(task.id);
    else this.tasks.set(task.id, task);
    this.render();
  }

  async add() {
    const title = this.input.value.trim();
    if (!title) return;
    this.input.value = "";
    await this.act("task:add", { title });
  }

  async act(action, params) {
    try {
      const response = await this.client.request("master", action, params);
      const task = parseJson(response.data);
      this.apply(action === "task:delete" ? "deleted" : "changed", task); // the broadcast follows; same result
    } catch (err) {
      this.toast(`${action}: ${err.message ?? err}`);
    }
  }

  render() {
    const all = [...this.tasks.values()].sort((a, b) =>
      (a.completed - b.completed) || String(a.created_at).localeCompare(String(b.created_at)));
    const items = all.slice(0, MAX_SHOWN).map((task) => this.item(task));
    this.list.replaceChildren(...(items.length ? items : [h("li", { class: "muted" }, "No tasks. Add one above, or say “add task …”.")]));
    const open = all.filter((t) => !t.completed).length;
    this.root.querySelector("[data-count]").textContent = all.length ? `${open} open` : "";
  }

  item(task) {
    const toggle = () => this.act(task.completed ? "task:reopen" : "task:complete", { id: task.id });
    return h("li", { class: task.completed ? "task done" : "task", dataset: { taskId: task.id } },
      h("input", { type: "checkbox", checked: task.completed, "aria-label": task.completed ? "reopen" : "complete",
        onchange: toggle }),
      h("span", { class: "title", title: task.notes || "" }, task.title),
      task.due_time ? h("span", { class: "due" }, when(task.due_time)) : null,
      h("button", { class: "x", type: "button", title: "delete", "aria-label": "delete",
        onclick: () => this.act("task:delete", { id: task.id }) }, "×"));
  }
}
