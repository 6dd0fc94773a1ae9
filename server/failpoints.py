"""Failpoints: named places where a test makes this process die, deterministically.

Chaos tests need kill -9 at the exact moment that matters (after an answer
went out, before it was stored), not "some time later" with a sleep. So the
code marks those moments with `failpoint("turn.after_final")`, and a test
starts the server with

    PEROMESH_FAILPOINTS=turn.after_final,reminder.after_fire     # die at the first hit of either
    PEROMESH_FAILPOINTS=turn.after_final=3                       # die at the 3rd hit

A hit of an armed point writes one line to stderr (`failpoint NAME hit N: exit 137`) and
calls `os._exit(137)` — the exit code of a SIGKILLed process: no `finally`, no atexit, no
flush, exactly as abrupt as the real thing.

The variable is read once, on the first call. Unset (production), a failpoint costs one
truthiness check of an empty dict.

Points in the tree: `turn.before_store` (the user row is stored, the answer is not),
`turn.after_store` (the answer committed, its `assistant_final` not yet emitted),
`turn.after_final` (the `assistant_final` was handed to gRPC), `reminder.after_fire`,
`reminder.before_ack`, `attach.before_receipted_write` (an envelope whose sender waits for its
write receipt, e.g. a reminder for a PeroLink v1 node, is dequeued, not yet written to the Attach
stream), `bridge.before_reminder_write` (a reminder the bridge acknowledges for a WebSocket client
that does not is queued, not yet written to the socket), and the memory index save's steps
`memory.save.before_replace`, `memory.save.before_meta`, `memory.save.before_meta_replace`,
`memory.save.before_cleanup` (server/memory/vector_index.py).
"""

from __future__ import annotations

import os

ENV = "PEROMESH_FAILPOINTS"
EXIT_CODE = 137

_armed: dict[str, int] | None = None  # name → the hit that fires (1 = the first)
_hits: dict[str, int] = {}


def parse(spec: str) -> dict[str, int]:
    """`a,b=3` → {"a": 1, "b": 3}; raises ValueError on a malformed entry (a typo must not pass silently)."""
    armed: dict[str, int] = {}
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        name, _, nth = entry.partition("=")
        name = name.strip()
        if not name or (nth and not nth.strip().isdigit()) or (nth and int(nth) < 1):
            raise ValueError(f"{ENV}: bad entry {entry!r} (expected NAME or NAME=N with N >= 1)")
        armed[name] = int(nth) if nth else 1
    return armed


def failpoint(name: str) -> None:
    """Exit the process here (code 137) if `name` is armed and this is its chosen hit."""
    global _armed
    if _armed is None:
        _armed = parse(os.environ.get(ENV, ""))
    if not _armed or name not in _armed:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _armed[name]:
        os.write(2, f"failpoint {name} hit {_hits[name]}: exit {EXIT_CODE}\n".encode())
        os._exit(EXIT_CODE)
