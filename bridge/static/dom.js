// Tiny DOM helpers shared by the console's panels (no framework, no build step).

/**
 * Create an element: h("li", { class: "x", dataset: { id } , onclick }, "text", child, …).
 * Strings become text nodes (never HTML), so mesh data cannot inject markup.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  el.append(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  return el;
}

/** Parse a JSON string param (broadcast params are strings); `fallback` when absent or malformed. */
export function parseJson(text, fallback = null) {
  if (typeof text !== "string" || !text) return fallback;
  try { return JSON.parse(text); } catch { return fallback; }
}

/** "14:05" today, "Mon 14:05" within a week, else a short date (for due times and activity). */
export function when(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  const now = new Date();
  const time = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (t.toDateString() === now.toDateString()) return time;
  if (Math.abs(t - now) < 6 * 864e5) return `${t.toLocaleDateString([], { weekday: "short" })} ${time}`;
  return `${t.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

/** Bytes as "3.2 GiB" / "512 MiB". */
export function bytes(n) {
  const v = Number(n) || 0;
  if (v >= 1 << 30) return `${(v / (1 << 30)).toFixed(1)} GiB`;
  return `${Math.round(v / (1 << 20))} MiB`;
}
