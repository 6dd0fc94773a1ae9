// The PeroMesh web console: a chat with streamed text, streamed speech and barge-in, and panels for
// tasks, reminders, devices and a live system chart. Everything mesh-related goes through the JS
// SDK (/js/peromesh.js); each panel is its own module and finds its root by `data-panel`.

import { PeroMeshClient } from "/js/peromesh.js";
import { ActivityLog } from "/static/activity.js";
import { ChatView } from "/static/chat.js";
import { DevicesPanel } from "/static/devices.js";
import { HistoryView } from "/static/history.js";
import { PcmPlayer } from "/static/player.js";
import { RemindersPanel } from "/static/reminders.js";
import { SystemChart } from "/static/system_chart.js";
import { TasksPanel } from "/static/tasks.js";
import { Transcript } from "/static/transcript.js";
import { VoiceMenu } from "/static/voices.js";

const $ = (id) => document.getElementById(id);
const panel = (name) => document.querySelector(`[data-panel="${name}"]`);
const ui = {
  chat: $("chat"), input: $("input"), send: $("send"), stop: $("stop"), mic: $("mic"),
  avatar: $("avatar"), status: $("status"), statusText: $("status-text"), conn: $("conn"), connText: $("conn-text"),
  toast: $("toast"), dialog: $("token-dialog"), tokenInput: $("token-input"),
  mute: $("mute"), volume: $("volume"), voice: $("voice"), takeover: $("takeover"), takeoverButton: $("takeover-button"),
};
const INTERRUPTED_SHOWN_MS = 1500; // "interrupted" in the header, then back to idle

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

function toast(text, ms_ = 3500) {
  ui.toast.textContent = text;
  ui.toast.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => ui.toast.classList.remove("show"), ms_);
}

// -- speech output: player, volume and mute (kept in localStorage) ---------------------
const player = new PcmPlayer();
(function animateAvatar() {
  ui.avatar.style.setProperty("--level", player.level().toFixed(2));
  requestAnimationFrame(animateAvatar);
})();

function wireSound() {
  const stored = Number(localStorage.getItem("peromesh.volume") ?? 100);
  ui.volume.value = String(Number.isFinite(stored) ? stored : 100);
  player.setVolume(Number(ui.volume.value) / 100);
  player.setMuted(localStorage.getItem("peromesh.muted") === "true");
  const render = () => {
    ui.mute.setAttribute("aria-pressed", String(player.muted));
    ui.mute.dataset.muted = String(player.muted);
    ui.mute.title = player.muted ? "Unmute speech" : "Mute speech";
  };
  ui.mute.addEventListener("click", () => {
    player.setMuted(!player.muted);
    localStorage.setItem("peromesh.muted", String(player.muted));
    render();
  });
  ui.volume.addEventListener("input", () => {
    player.setVolume(Number(ui.volume.value) / 100);
    localStorage.setItem("peromesh.volume", ui.volume.value);
    if (player.muted && Number(ui.volume.value) > 0) ui.mute.click();
  });
  render();
}

async function main() {
  const token = takeToken() || await askToken();
  const device = deviceId();
  $("fact-device").textContent = device;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  // reminderAcks: each reminder_trigger is acknowledged once the panels and the activity list showed it
  // (their handlers ran); one not acknowledged (the page closed first) comes again at the next connect.
  const client = new PeroMeshClient({ url, token, deviceId: device, deviceName: "Web console", platform: "web",
    capabilities: ["ui.display", "audio.playback"], reminderAcks: true });
  const transcript = new Transcript(device);
  const chat = new ChatView(ui.chat, transcript);
  const history = new HistoryView(chat, client);
  const panels = {
    tasks: new TasksPanel(panel("tasks"), client, toast),
    reminders: new RemindersPanel(panel("reminders"), client, toast),
    devices: new DevicesPanel(panel("devices"), client, device),
    system: new SystemChart(panel("system"), client),
  };
  const activity = new ActivityLog($("activity"));
  window.peromesh = { client, player, chat, panels, transcript, history }; // for debugging and the browser tests
  wireSound();

  // -- the conversation so far: the mesh's history; this browser's copy only while the mesh can't answer
  let shownHistory = "none"; // "none" | "local" (the Transcript) | "server" (history:list)
  function showLocalHistory() {
    if (shownHistory !== "none") return;
    chat.restore();
    shownHistory = "local";
  }
  async function showServerHistory() {
    if (shownHistory === "server") return; // a reconnect: the conversation is on screen already
    if (await history.load()) {
      chat.dropLocal();
      shownHistory = "server";
    } else {
      showLocalHistory();
    }
  }

  // -- voice: the mesh's installed voices; a hello setting, so a change reconnects (the session goes on)
  const voices = new VoiceMenu(ui.voice, client, async (label) => {
    player.stop();
    chat.settle();
    try {
      await client.reconnect();
      toast(`voice: ${label}`);
    } catch (err) {
      toast(String(err.message ?? err));
    }
  });
  chat.voiceLabel = (name) => voices.label(name);
  window.peromesh.voices = voices;

  // -- header status ----------------------------------------------------------------
  let serverState = "idle";
  let settleTimer = 0;
  function setServerState(state) {
    serverState = state;
    clearTimeout(settleTimer);
    if (state === "interrupted") settleTimer = setTimeout(() => setServerState("idle"), INTERRUPTED_SHOWN_MS);
    renderStatus();
  }
  function renderStatus() {
    let state = serverState;
    if (player.playing && state !== "thinking") state = "speaking";
    ui.status.dataset.state = state;
    ui.avatar.dataset.state = state;
    ui.statusText.textContent = state;
    ui.stop.disabled = !(player.playing || state === "thinking" || state === "speaking");
  }
  player.onchange = renderStatus;

  // -- connection ---------------------------------------------------------------------
  function setInputEnabled(enabled, why = "") {
    for (const el of [ui.input, ui.send, ui.mic]) el.disabled = !enabled;
    ui.input.placeholder = enabled ? "Message Pero…  (Enter to send, Shift+Enter for a new line)" : why;
  }
  client.on("connection", (e) => {
    ui.conn.dataset.state = e.state;
    ui.connText.textContent = {
      connecting: "connecting…", open: e.resumed ? "connected · resumed" : "connected",
      reconnecting: e.delayMs !== undefined ? `reconnecting in ${(e.delayMs / 1000).toFixed(1)} s…` : "reconnecting…",
      closed: e.code === 4401 ? "token rejected" : e.code === 4409 ? "opened elsewhere" : "disconnected",
    }[e.state] ?? e.state;
    if (e.state === "open") {
      ui.takeover.hidden = true;
      setInputEnabled(true);
      return;
    }
    if (e.state !== "reconnecting" && e.state !== "closed") return;
    showLocalHistory(); // the mesh cannot be asked now: this browser's copy is better than nothing
    player.stop(); // nothing of a lost connection keeps talking
    chat.settle();
    setServerState("idle");
    if (e.state === "reconnecting" && e.reason) toast(`connection lost: ${e.reason}`);
    if (e.state === "closed" && e.code === 4409) {
      ui.takeover.hidden = false;
      setInputEnabled(false, "Pero is open in another tab — use it there, or take over above.");
    } else if (e.state === "closed" && e.code === 4401) {
      localStorage.removeItem("peromesh.token");
      askToken().then((t) => { client.options.token = t; client.connect().catch(() => {}); });
    } else if (e.state === "closed") {
      setInputEnabled(false, "Disconnected — reload to connect again.");
    }
  });
  ui.takeoverButton.addEventListener("click", () => {
    ui.takeover.hidden = true;
    client.connect().catch((err) => toast(String(err.message ?? err)));
  });
  client.on("welcome", (w) => {
    $("fact-session").textContent = w.sessionId;
    $("fact-session").title = w.sessionId;
    $("fact-resumed").textContent = w.resumed ? (w.historyTurns ? `yes (${w.historyTurns} turns)` : "yes") : "no";
    if (transcript.session(w.sessionId)) chat.divider("new session");
    showServerHistory();
    voices.load();
    panels.tasks.load();
    panels.reminders.load();
    panels.devices.start();
  });
  client.on("heartbeat", (h) => { $("fact-rtt").textContent = `${h.rttMs} ms rtt`; });

  // -- the conversation -----------------------------------------------------------------
  client.on("state_update", (e) => {
    if (e.params.state === "thinking") chat.turn(e.turnId);
    if (e.params.state === "listening" && player.playing) { // the mesh heard the user speak over the answer
      chat.userCut(client.currentTurn);
      player.stop();
    }
    setServerState(e.params.state);
  });
  client.on("assistant_delta", (e) => chat.delta(e.turnId, e.params.text_delta));
  client.on("assistant_final", (e) => chat.final(e.turnId, e.params));
  client.on("audio_begin", (e) => {
    player.begin(e.turnId, Number(e.params.sample_rate) || 24000);
    $("fact-audio").textContent = e.params.mime;
  });
  client.on("audio_chunk", (e) => { if (!e.isEnd) player.push(e.turnId, e.pcm); });
  client.on("audio_end", (e) => chat.spokenBy(e.turnId, (e.params.voices ?? "").split(",").filter(Boolean)));
  client.on("audio_cancel", () => player.stop());
  client.on("metrics", (e) => chat.metrics(e.turnId, e.params));
  client.on("error", (e) => {
    const message = `${e.params.code}: ${e.params.message}`;
    if (!chat.error(e.turnId, message)) toast(message);
  });
  client.on("action", (e) => activity.add(e));

  async function send() {
    const text = ui.input.value.trim();
    if (!text || ui.input.disabled) return;
    player.unlock(); // a user gesture: audio may start
    player.stop(); // the previous answer's speech ends; it is not marked as cut (see chat.js)
    ui.input.value = "";
    autosize();
    chat.userSays(text);
    try {
      await client.sendText(text);
    } catch (err) {
      chat.error("", String(err.message ?? err));
    }
  }

  function interrupt() {
    const turn = client.currentTurn || player.turnId;
    const playedMs = player.playedMs(turn); // before stop(): how much the person actually heard
    chat.userCut(turn);
    player.stop(); // silence first, then tell the mesh
    client.interrupt(turn, { playedMs });
    setServerState("interrupted");
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
      listening = chat.add("user");
      listening.el.classList.add("partial");
    }
    if (listening) {
      listening.bubble.textContent = text;
      chat.scroll();
    }
    if (e.params.is_final === "true") {
      if (listening && !text) listening.el.remove();
      if (listening && text) transcript.put({ role: "user", text });
      listening?.el.classList.remove("partial");
      listening = null;
    }
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
    if (client.connectionState !== "closed") toast(String(err.message ?? err));
  }
  ui.input.focus();
}

main();
