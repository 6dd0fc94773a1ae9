"""The contract between `peromesh serve` and each server it can run.

A component is one gRPC server (or the bridge). `serve` starts the selected
components in registry order; each publishes its address in the context so
later ones reach it over gRPC exactly as they would across machines.
"""

from __future__ import annotations

import argparse
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
    token: str | None
    addresses: dict[str, str] = field(default_factory=dict)
    # In-process objects shared inside one process (e.g. the hub), by name.
    shared: dict[str, Any] = field(default_factory=dict)

    def db_url(self, name: str) -> str:
        """The SQLAlchemy URL for a component's tables (--db-url, else a SQLite file)."""
        url: str | None = self.settings.db_url
        return url or sqlite_url(self.data_dir, name)

    def port(self, name: str) -> int:
        return int(getattr(self.settings, f"{name}_port"))

    def address_of(self, name: str) -> str | None:
        """Where component `name` listens: started here, or given by --<name>-addr."""
        return self.addresses.get(name) or getattr(self.settings, f"{name}_addr", None)


def load_or_create_token(data_dir: Path, configured: str | None) -> tuple[str, bool]:
    """The mesh token: configured, else read from (or created into) the data dir.

    Returns (token, created) so the caller prints a new token exactly once.
    """
    if configured:
        return configured, False
    path = data_dir / "token"
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token, True
