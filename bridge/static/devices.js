// The devices panel: the nodes attached to the mesh now and what each can do (its capabilities).
// The gateway has no node-change broadcast, so the list is read with `node:list` on connect and
// then every few seconds while the tab is visible (one small request; nothing when hidden).

import { h, parseJson } from "/static/dom.js";

const REFRESH_MS = 3000;

export class DevicesPanel {
  constructor(root, client, selfId) {
    this.root = root;
    this.client = client;
    this.selfId = selfId;
    this.list = root.querySelector("[data-list]");
    this.timer = 0;
    this.loading = false;
  }

  /** Load now and keep refreshing until the connection closes (call on every welcome). */
  start() {
    clearInterval(this.timer);
    this.load();
    this.timer = setInterval(() => {
      if (this.client.connectionState !== "open") { clearInterval(this.timer); return; }
      if (document.visibilityState === "visible") this.load();
    }, REFRESH_MS);
  }

  async load() {
    if (this.loading) return;
    this.loading = true;
    try {
      const response = await this.client.request("master", "node:list", {});
      this.render(parseJson(response.data, []));
    } catch (err) {
      this.root.dataset.error = String(err.message ?? err);
    } finally {
      this.loading = false;
    }
  }

  render(nodes) {
    this.list.replaceChildren(...nodes.map((node) => this.item(node)));
    this.root.querySelector("[data-count]").textContent = `${nodes.length} online`;
  }

  item(node) {
    const caps = node.capabilities ?? [];
    const name = node.device_name && node.device_name !== node.node_id ? node.device_name : node.node_id;
    return h("li", { class: "device", dataset: { nodeId: node.node_id } },
      h("div", { class: "what" }, h("span", { class: "dot on" }), name,
        node.node_id === this.selfId ? h("span", { class: "you" }, "this tab") : null),
      h("div", { class: "sub" }, [node.platform, node.node_id !== name ? node.node_id : ""].filter(Boolean).join(" · ")),
      h("div", { class: "caps" }, caps.length
        ? caps.map((c) => h("span", { class: c.dangerous ? "cap dangerous" : "cap", dataset: { capability: c.name },
          title: (c.description || c.name) + (c.dangerous ? " (dangerous: only when allowed)" : "") }, c.name))
        : h("span", { class: "muted" }, "no capabilities")));
  }
}
