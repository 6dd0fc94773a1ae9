// Gap-free PCM16 playback with WebAudio: every chunk becomes an AudioBuffer
// scheduled exactly at the end of the previous one (sample-accurate, no gaps,
// no clicks). stop() silences at once and forgets everything queued. Volume and mute act on one
// gain node, so they apply to what is already scheduled too.

export class PcmPlayer {
  constructor({ leadMs = 60 } = {}) {
    this.leadS = leadMs / 1000;
    this.context = null;
    this.gain = null;
    this.analyser = null;
    this.sources = new Set();
    this.nextTime = 0;
    this.rate = 24000;
    this.turnId = "";
    this.turnSamples = 0; // of this.turnId, pushed so far
    this.stats = { chunks: 0, samples: 0, stops: 0, lastChunkAt: 0 };
    this.volume = 1;
    this.muted = false;
    this.onchange = () => {};
  }

  /** Create/resume the AudioContext (call from a user gesture so autoplay rules allow sound). */
  unlock() {
    if (!this.context) {
      this.context = new AudioContext({ latencyHint: "interactive" });
      this.gain = this.context.createGain();
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 512;
      this.gain.connect(this.analyser).connect(this.context.destination);
      this._applyGain();
    }
    if (this.context.state === "suspended") this.context.resume();
  }

  begin(turnId, sampleRate) {
    if (turnId !== this.turnId) this.turnSamples = 0;
    this.turnId = turnId;
    this.rate = sampleRate || 24000;
  }

  /** How much of `turnId`'s audio has been played (ms): what was queued minus what is still ahead;
   *  null for a turn this player did not play last. Read it before stop(). */
  playedMs(turnId) {
    if (!turnId || turnId !== this.turnId || !this.context) return null;
    return Math.max(0, Math.round((this.turnSamples / this.rate) * 1000 - this.bufferedMs));
  }

  /** Queue PCM16 little-endian mono bytes for playback right after what is already queued. */
  push(turnId, bytes) {
    if (!bytes.length) return;
    this.unlock();
    if (turnId !== this.turnId) this.begin(turnId, this.rate);
    const pcm = new Int16Array(bytes.slice(0, bytes.length - (bytes.length % 2)).buffer);
    const samples = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    const buffer = this.context.createBuffer(1, samples.length, this.rate);
    buffer.copyToChannel(samples, 0);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.gain);
    const now = this.context.currentTime;
    if (this.nextTime < now + 0.005) this.nextTime = now + this.leadS; // (re)start: a small lead, then back to back
    source.start(this.nextTime);
    this.nextTime += buffer.duration;
    this.sources.add(source);
    source.onended = () => {
      this.sources.delete(source);
      if (!this.sources.size) this.onchange();
    };
    this.stats.chunks += 1;
    this.stats.samples += samples.length;
    this.turnSamples += samples.length;
    this.stats.lastChunkAt = performance.now();
    if (this.sources.size === 1) this.onchange();
  }

  /** Silence now: stop every scheduled buffer and drop the queue. */
  stop() {
    for (const source of this.sources) {
      source.onended = null;
      try { source.stop(); } catch { /* not started yet */ }
      source.disconnect();
    }
    this.sources.clear();
    this.nextTime = 0;
    this.stats.stops += 1;
    this.onchange();
  }

  /** 0..1; remembered before the AudioContext exists. */
  setVolume(volume) {
    this.volume = Math.max(0, Math.min(1, Number(volume) || 0));
    this._applyGain();
  }

  setMuted(muted) {
    this.muted = !!muted;
    this._applyGain();
  }

  _applyGain() {
    if (this.gain) this.gain.gain.value = this.muted ? 0 : this.volume;
  }

  get playing() { return this.sources.size > 0; }

  get bufferedMs() {
    return this.context ? Math.max(0, (this.nextTime - this.context.currentTime) * 1000) : 0;
  }

  /** 0..1 loudness of what is playing now (for the avatar). */
  level() {
    if (!this.analyser || !this.playing) return 0;
    const data = new Uint8Array(this.analyser.fftSize);
    this.analyser.getByteTimeDomainData(data);
    let sum = 0;
    for (const v of data) sum += (v - 128) ** 2;
    return Math.min(1, Math.sqrt(sum / data.length) / 40);
  }
}
