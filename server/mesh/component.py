"""The contract between `peromesh serve` and each server it can run.

A component is one gRPC server (or the bridge). `serve` starts the selected
components in registry order; each publishes its address in the context so
later ones reach it over gRPC exactly as they would across machines.
"""

from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from server.storage.db import sqlite_url


class Running(Protocol):
    """A started component."""

    @property
    def address(self) -> str: ...

    async def stop(self) -> None: ...


class Component(Protocol):
    """A server `peromesh serve` can start."""

    name: str  # flag prefix: --<name>-port, --<name>-addr
    default_port: int
    description: str

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Component-specific flags (common --<name>-port/--<name>-addr are added for you)."""

    async def start(self, ctx: MeshContext) -> Running: ...


@dataclass
class MeshContext:
    """What a starting component can see: settings, data dir, and its peers."""

    settings: argparse.Namespace
    data_dir: Path
    token: str | None  # the mesh token every gRPC server demands and every client sends
    addresses: dict[str, str] = field(default_factory=dict)
    # In-process objects shared inside one process (e.g. the hub), by name.
    shared: dict[str, Any] = field(default_factory=dict)

    def db_url(self, name: str) -> str:
        """The SQLAlchemy URL for a component's tables (--db-url, else a SQLite file)."""
        url: str | None = self.settings.db_url
        return url or sqlite_url(self.data_dir, name)

    @property
    def cluster_url(self) -> str | None:
        """--cluster-url: the Redis that joins several cores into one mesh (None: this process alone)."""
        url: str | None = getattr(self.settings, "cluster_url", None)
        return url or None

    @property
    def allow_unauthenticated_loopback(self) -> bool:
        """--allow-unauthenticated-loopback: loopback servers without --token answer anyone local."""
        return bool(getattr(self.settings, "allow_unauthenticated_loopback", False))

    def port(self, name: str) -> int:
        return int(getattr(self.settings, f"{name}_port"))

    def address_of(self, name: str) -> str | None:
        """Where component `name` listens: started here, or given by --<name>-addr."""
        return self.addresses.get(name) or getattr(self.settings, f"{name}_addr", None)


def load_or_create_token(data_dir: Path, configured: str | None) -> tuple[str, bool]:
    """The mesh token: configured, else read from (or created into) the data dir.

    Returns (token, created) so the caller prints a new token exactly once.
    The file is born 0600 and whole: written to a temp file created 0600
    (O_CREAT|O_EXCL with the mode), then hard-linked into place, which fails
    if the name exists; so no other user can read it even for an instant, a
    reader never sees it half written, and two processes starting at once
    agree on one token.
    """
    if configured:
        return configured, False
    path = data_dir / "token"
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    tmp = data_dir / f".token.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text().strip(), False
    finally:
        tmp.unlink(missing_ok=True)
    return token, True
