// The PeroMesh web console: a chat with streamed text, streamed speech and barge-in.
// Everything mesh-related goes through the JS SDK (/js/peromesh.js).

import { PeroMeshClient } from "/js/peromesh.js";
import { PcmPlayer } from "/static/player.js";

const $ = (id) => document.getElementById(id);
const ui = {
  chat: $("chat"), empty: $("empty"), input: $("input"), send: $("send"), stop: $("stop"), mic: $("mic"),
  avatar: $("avatar"), status: $("status"), statusText: $("status-text"), conn: $("conn"), connText: $("conn-text"),
  toast: $("toast"), activity: $("activity"), dialog: $("token-dialog"), tokenInput: $("token-input"),
};

// -- token and device id ----------------------------------------------------------
function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const given = fragment.get("token") || query.get("token");
  if (given) {
    localStorage.setItem("peromesh.token", given);
    query.delete("token");
    const search = query.toString();
    history.replaceState(null, "", location.pathname + (search ? `?${search}` : "")); // keep it out of the address bar
  }
  return given || localStorage.getItem("peromesh.token") || "";
}

function askToken() {
  return new Promise((resolve) => {
    ui.dialog.showModal();
    ui.dialog.addEventListener("close", () => {
      const token = ui.tokenInput.value.trim();
      localStorage.setItem("peromesh.token", token);
      resolve(token);
    }, { once: true });
  });
}

function deviceId() {
  const fromQuery = new URLSearchParams(location.search).get("device");
  if (fromQuery) return fromQuery;
  let id = localStorage.getItem("peromesh.device");
  if (!id) {
    id = `web-${crypto.getRandomValues(new Uint32Array(2)).join("").slice(0, 10)}`;
    localStorage.setItem("peromesh.device", id);
  }
  return id;
}

// -- conversation view --------------------------------------------------------------
const turns = new Map(); // turn id → { el, text, bubble, meta }
let pendingAssistant = null; // the bubble shown while we wait for the turn id
let serverState = "idle";

function addMessage(role, text = "") {
  ui.empty?.remove();
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.textContent = text;
  const meta = document.createElement("div");
  meta.className = "meta";
  el.append(bubble, meta);
  ui.chat.append(el);
  scrollDown();
  return { el, bubble, meta, text };
}

function turnView(turnId) {
  let view = turns.get(turnId);
  if (!view) {
    view = pendingAssistant ?? addMessage("assistant");
    pendingAssistant = null;
    view.el.dataset.turn = turnId;
    view.el.classList.add("streaming");
    turns.set(turnId, view);
  }
  return view;
}

function scrollDown() { ui.chat.scrollTop = ui.chat.scrollHeight; }

function chip(meta, text, cls = "") {
  const el = document.createElement("span");
  el.className = `chip ${cls}`;
  el.textContent = text;
  meta.append(el);
}

const ms = (v) => {
  const n = Number(v);
  if (n >= 1000) return `${(n / 1000).toFixed(2)} s`;
  return n < 1 ? `${n.toFixed(2)} ms` : `${Math.round(n)} ms`;
};

// -- status -------------------------------------------------------------------------
function renderStatus() {
  let state = serverState;
  if (player.playing && state !== "thinking") state = "speaking";
  ui.status.dataset.state = state;
  ui.avatar.dataset.state = state;
  ui.statusText.textContent = state;
  ui.stop.disabled = !(player.playing || state === "thinking" || state === "speaking");
}

function toast(text, ms_ = 3500) {
  ui.toast.textContent = text;
  ui.toast.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => ui.toast.classList.remove("show"), ms_);
}

function logActivity(event) {
  ui.activity.querySelector(".muted")?.remove();
  const li = document.createElement("li");
  const params = Object.entries(event.params).map(([k, v]) => `${k}=${v}`).join(" ");
  li.innerHTML = `<div><b></b> <span class="from"></span></div><div class="params"></div><div class="when"></div>`;
  li.querySelector("b").textContent = event.name;
  li.querySelector(".from").textContent = `from ${event.source}`;
  li.querySelector(".params").textContent = params.slice(0, 160);
  li.querySelector(".when").textContent = new Date().toLocaleTimeString();
  ui.activity.prepend(li);
  while (ui.activity.children.length > 50) ui.activity.lastChild.remove();
}

// -- wiring ---------------------------------------------------------------------------
const player = new PcmPlayer();
player.onchange = renderStatus;
(function animateAvatar() {
  ui.avatar.style.setProperty("--level", player.level().toFixed(2));
  requestAnimationFrame(animateAvatar);
})();

async function main() {
  let token = takeToken() || await askToken();
  const device = deviceId();
  $("fact-device").textContent = device;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const client = new PeroMeshClient({ url, token, deviceId: device, deviceName: "Web console", platform: "web",
    capabilities: ["ui.display", "audio.playback"] });
  window.peromesh = { client, player, turns }; // for debugging and the browser tests

  client.on("connection", (e) => {
    ui.conn.dataset.state = e.state;
    ui.connText.textContent = {
      connecting: "connecting…", open: e.resumed ? "connected · resumed" : "connected",
      reconnecting: e.delayMs !== undefined ? `reconnecting in ${(e.delayMs / 1000).toFixed(1)} s…` : "reconnecting…",
      closed: e.code === 4401 ? "token rejected" : e.code === 4409 ? "opened elsewhere" : "disconnected",
    }[e.state] ?? e.state;
    if (e.state === "reconnecting" && e.reason) toast(`connection lost: ${e.reason}`);
    if (e.state === "closed" && e.code === 4401) {
      localStorage.removeItem("peromesh.token");
      askToken().then((t) => { client.options.token = t; client.connect().catch(() => {}); });
    }
  });
  client.on("welcome", (w) => {
    $("fact-session").textContent = w.sessionId;
    $("fact-session").title = w.sessionId;
    $("fact-resumed").textContent = w.resumed ? (w.historyTurns ? `yes (${w.historyTurns} turns)` : "yes") : "no";
  });
  client.on("heartbeat", (h) => { $("fact-rtt").textContent = `${h.rttMs} ms rtt`; });
  client.on("state_update", (e) => {
    serverState = e.params.state;
    if (serverState === "thinking") turnView(e.turnId);
    renderStatus();
  });
  client.on("assistant_delta", (e) => {
    const view = turnView(e.turnId);
    view.text += e.params.text_delta;
    view.bubble.textContent = view.text;
    scrollDown();
  });
  client.on("assistant_final", (e) => {
    const view = turnView(e.turnId);
    view.el.classList.remove("streaming");
    view.text = e.params.text;
    view.bubble.textContent = view.text || (e.params.interrupted === "true" ? "…" : "");
    if (e.params.interrupted === "true") view.el.classList.add("interrupted");
  });
  client.on("audio_begin", (e) => {
    player.begin(e.turnId, Number(e.params.sample_rate) || 24000);
    $("fact-audio").textContent = e.params.mime;
  });
  client.on("audio_chunk", (e) => { if (!e.isEnd) player.push(e.turnId, e.pcm); });
  client.on("audio_cancel", () => player.stop());
  client.on("metrics", (e) => {
    const view = turnView(e.turnId), p = e.params;
    view.meta.replaceChildren();
    if (Number(p.t_first_delta_ms)) chip(view.meta, `first token ${ms(p.t_first_delta_ms)}`);
    if (Number(p.t_first_audio_ms)) chip(view.meta, `first audio ${ms(p.t_first_audio_ms)}`);
    chip(view.meta, `total ${ms(p.t_total_ms)}`);
    if (view.el.classList.contains("interrupted")) chip(view.meta, `interrupted · cut in ${ms(p.t_interrupt_ms)}`, "cut");
  });
  client.on("error", (e) => toast(`${e.params.code}: ${e.params.message}`));
  client.on("action", logActivity);

  async function send() {
    const text = ui.input.value.trim();
    if (!text) return;
    player.unlock(); // a user gesture: audio may start
    player.stop();
    ui.input.value = "";
    autosize();
    addMessage("user", text);
    pendingAssistant = addMessage("assistant");
    pendingAssistant.el.classList.add("streaming");
    try {
      await client.sendText(text);
    } catch (err) {
      pendingAssistant?.el.classList.add("error");
      if (pendingAssistant) pendingAssistant.bubble.textContent = String(err.message ?? err);
      pendingAssistant = null;
    }
  }

  function interrupt() {
    player.stop(); // silence first, then tell the mesh
    client.interrupt();
    serverState = "interrupted";
    renderStatus();
  }

  // Voice: hold the mic button to talk (release = end of utterance), or click it for hands-free
  // (the microphone stays open; the server's voice-activity detection ends each utterance and
  // barges in when you speak over the assistant; browser echo cancellation keeps its voice out).
  let recording = null;
  let micMode = null; // "push-to-talk" while held, "hands-free" after a click, null when off
  let pressedAt = 0;

  function renderMic() {
    ui.mic.classList.toggle("recording", !!micMode);
    ui.mic.dataset.mode = micMode ?? "";
    ui.mic.title = micMode === "hands-free" ? "Hands-free: listening (click to stop)"
      : micMode ? "Talking (release to send)" : "Hold to talk · click for hands-free";
  }

  async function startMic() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(
        { audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
      if (!micMode || recording) { stream.getTracks().forEach((t) => t.stop()); return; } // released meanwhile
      recording = { stream, capture: client.sendAudio(stream) };
    } catch (err) {
      micMode = null;
      renderMic();
      toast(`microphone: ${err.message ?? err}`);
    }
  }

  async function stopMic() {
    micMode = null;
    renderMic();
    const r = recording;
    recording = null;
    if (!r) return;
    await r.capture.stop(); // sends is_end: the utterance is final now
    r.stream.getTracks().forEach((t) => t.stop());
  }

  async function micDown() {
    if (micMode === "hands-free") { await stopMic(); return; }
    if (micMode) return;
    micMode = "push-to-talk";
    pressedAt = performance.now();
    renderMic();
    player.unlock();
    if (player.playing || serverState === "thinking") interrupt(); // pressing to talk = barge in
    await startMic();
  }

  async function micUp() {
    if (micMode !== "push-to-talk") return;
    if (performance.now() - pressedAt < 350) { micMode = "hands-free"; renderMic(); return; } // a click
    await stopMic();
  }

  // The live transcript of what the user is saying, as a user message that firms up when final.
  let listening = null;
  client.on("transcription", (e) => {
    const text = e.params.text ?? "";
    if (!listening && text) {
      listening = addMessage("user");
      listening.el.classList.add("partial");
    }
    if (listening) {
      listening.bubble.textContent = text;
      scrollDown();
    }
    if (e.params.is_final === "true") {
      if (listening && !text) listening.el.remove();
      listening?.el.classList.remove("partial");
      listening = null;
    }
  });
  client.on("state_update", (e) => {
    // The server heard speech over the assistant (barge-in): silence what is still queued here too,
    // also audio of a turn the server had already finished sending.
    if (e.params.state === "listening" && player.playing) player.stop();
  });

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${Math.min(160, ui.input.scrollHeight)}px`;
  }

  ui.send.addEventListener("click", send);
  ui.stop.addEventListener("click", interrupt);
  ui.mic.addEventListener("pointerdown", (e) => { e.preventDefault(); micDown(); });
  ui.mic.addEventListener("pointerup", () => micUp());
  ui.mic.addEventListener("pointerleave", () => { if (micMode === "push-to-talk") micUp(); });
  ui.mic.addEventListener("click", (e) => { // keyboard (Enter/Space): toggle hands-free
    if (e.detail !== 0) return;
    if (micMode) stopMic(); else { micMode = "hands-free"; renderMic(); startMic(); }
  });
  renderMic();
  ui.input.addEventListener("input", autosize);
  ui.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    if (e.key === "Escape") interrupt();
  });
  try {
    await client.connect();
  } catch (err) {
    toast(String(err.message ?? err));
  }
  ui.input.focus();
}

main();
