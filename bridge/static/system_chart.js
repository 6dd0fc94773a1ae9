// The system panel: a live CPU / memory / GPU chart from the mesh's `system_stats` broadcasts,
// drawn as inline SVG polylines (no charting library). The last MAX_SAMPLES samples are kept.

import { bytes, h, parseJson } from "/static/dom.js";

const MAX_SAMPLES = 60;
const W = 300, H = 90, PAD = 3; // viewBox units; the svg scales to the panel's width
const SERIES = [
  { key: "cpu", label: "CPU", cls: "cpu" },
  { key: "mem", label: "Memory", cls: "mem" },
  { key: "gpu", label: "GPU", cls: "gpu" },
];
const NS = "http://www.w3.org/2000/svg";

export class SystemChart {
  constructor(root, client) {
    this.root = root;
    this.samples = []; // { cpu, mem, gpu|null, raw }
    this.svg = root.querySelector("svg");
    this.legend = root.querySelector("[data-legend]");
    this.lines = {};
    for (const y of [25, 50, 75]) this.svg.append(svgEl("line", { x1: 0, x2: W, y1: H - y * H / 100, y2: H - y * H / 100, class: "grid" }));
    for (const s of SERIES) this.svg.append(this.lines[s.key] = svgEl("polyline", { class: `line ${s.cls}`, points: "" }));
    client.on("system_stats", (e) => this.add(e.params));
  }

  add(p) {
    const gpus = parseJson(p.gpus, []);
    const gpu = gpus.length ? gpus.reduce((sum, g) => sum + (Number(g.utilization_percent) || 0), 0) / gpus.length : null;
    this.samples.push({ cpu: Number(p.cpu_percent) || 0, mem: Number(p.memory_percent) || 0, gpu, raw: p, gpus });
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
    this.render();
  }

  render() {
    const n = this.samples.length;
    const x = (i) => (W * (MAX_SAMPLES - n + i) / (MAX_SAMPLES - 1)).toFixed(1);
    const y = (v) => (H - PAD - Math.max(0, Math.min(100, v)) * (H - 2 * PAD) / 100).toFixed(1); // 0 and 100% stay visible
    for (const s of SERIES) {
      const pts = this.samples.map((sample, i) => (sample[s.key] === null ? null : `${x(i)},${y(sample[s.key])}`));
      this.lines[s.key].setAttribute("points", pts.filter(Boolean).join(" "));
    }
    this.root.dataset.samples = String(n);
    const last = this.samples[n - 1];
    const gpuText = last.gpus.length
      ? `${Math.round(last.gpu)}% · ${last.gpus.map((g) => `${bytes(g.memory_used)} / ${bytes(g.memory_total)}`).join(", ")}`
      : "none";
    this.legend.replaceChildren(
      entry("cpu", "CPU", `${Math.round(last.cpu)}%${last.raw.cpu_count ? ` of ${last.raw.cpu_count} cores` : ""}`),
      entry("mem", "Memory", `${Math.round(last.mem)}% · ${bytes(last.raw.memory_used)} / ${bytes(last.raw.memory_total)}`),
      entry("gpu", "GPU", gpuText));
  }
}

function entry(cls, label, value) {
  return h("div", { class: `entry ${cls}`, dataset: { series: cls } }, h("i"), h("span", {}, label), h("b", {}, value));
}

function svgEl(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}
