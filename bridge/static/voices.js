// The voice menu: the voices the mesh's TTS server has installed (the `voices:list` action), grouped
// by the language they speak, after "automatic" (the best installed voice for each language). The
// choice is a hello setting (hello.voice), so a change reconnects and the same session goes on. A
// chosen voice speaks the parts of an answer in its language; the other parts keep the automatic
// voice (an English voice does not read Mandarin). Which voices spoke an answer comes back with
// its audio_end (params.voices) and is shown on the answer (chat.js), by the names given here.

import { h } from "/static/dom.js";

const STORED = "peromesh.voice";
export const LANGUAGES = ["en", "zh"]; // what the companion answers in
const LANGUAGE_NAMES = { en: "English", zh: "Mandarin" };

export class VoiceMenu {
  /** `onChange(label)` runs after a new choice is stored in client.options.voice. */
  constructor(select, client, onChange) {
    this.select = select;
    this.client = client;
    this.known = new Map(); // name → voice, as the mesh listed it
    const stored = localStorage.getItem(STORED) ?? "";
    client.options.voice = stored; // the hello carries it before the list has arrived
    if (stored) select.append(h("option", { value: stored }, stored)); // shown until the list replaces it
    select.value = stored;
    select.addEventListener("change", () => {
      localStorage.setItem(STORED, select.value);
      client.options.voice = select.value;
      onChange(this.label(select.value));
    });
  }

  /** Ask the mesh which voices it has and offer those; without an answer only "automatic" stays. */
  async load() {
    try {
      const { voices = [] } = await this.client.voices({ languages: LANGUAGES });
      this.render(voices);
    } catch (err) {
      this.select.dataset.state = "unavailable";
      this.select.title = `Only the automatic voice: ${err.message ?? err}`;
    }
  }

  render(voices) {
    this.known = new Map(voices.map((v) => [v.name, v]));
    const groups = LANGUAGES.map((language) => h("optgroup", { label: LANGUAGE_NAMES[language] },
      voices.filter((v) => LANGUAGES.find((l) => v.languages.includes(l)) === language)
        .map((v) => h("option", { value: v.name, title: `${v.engine} · ${v.name}` }, this.label(v.name)))));
    this.select.replaceChildren(h("option", { value: "" }, "Voice: automatic"),
      ...groups.filter((g) => g.children.length));
    const wanted = this.client.options.voice;
    if (wanted && !this.known.has(wanted)) { // no longer installed: the mesh speaks automatically already
      this.client.options.voice = "";
      localStorage.setItem(STORED, "");
    }
    this.select.value = this.client.options.voice;
    this.select.dataset.state = "loaded";
    this.select.dataset.count = String(voices.length);
  }

  /** "Joe (English, United States) · piper, neural" for a name the mesh listed; else the name. */
  label(name) {
    const v = this.known.get(name);
    if (!name) return "automatic";
    return v ? `${v.display_name} · ${v.engine}${v.neural ? ", neural" : ""}` : name;
  }
}
