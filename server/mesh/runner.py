"""Start and stop a set of components in one process."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.mesh.component import Component, MeshContext, Running
from server.warmup import progress

log = logging.getLogger(__name__)


@dataclass
class Mesh:
    """The running components of this process, stoppable in reverse order."""

    context: MeshContext
    running: list[tuple[str, Running]] = field(default_factory=list)

    @property
    def addresses(self) -> dict[str, str]:
        return dict(self.context.addresses)

    async def stop(self) -> None:
        while self.running:
            name, part = self.running.pop()
            try:
                await part.stop()
            except Exception:
                log.exception("stopping %s failed", name)


async def start_mesh(context: MeshContext, selected: Sequence[Component]) -> Mesh:
    """Start `selected` in order; on failure, stop what already started and re-raise."""
    mesh = Mesh(context)
    try:
        for component in selected:
            progress(f"starting {component.name} …")  # its models load (and are announced) before it listens
            part = await component.start(context)
            context.addresses[component.name] = part.address
            mesh.running.append((component.name, part))
    except BaseException:
        await mesh.stop()
        raise
    _write_endpoints(context.data_dir, context.addresses)
    return mesh


def _write_endpoints(data_dir: Path, addresses: dict[str, str]) -> None:
    """Record where everything listens, for scripts and tests (ports may be 0)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / "endpoints.json.tmp"
    tmp.write_text(json.dumps(addresses, indent=2))
    tmp.replace(data_dir / "endpoints.json")
