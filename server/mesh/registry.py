"""The components `peromesh serve` knows, in start order.

Order matters: a component may depend on the addresses of the ones before it
(the core needs TTS and memory; the bridge needs the core).
"""

from __future__ import annotations

from server.mesh.component import Component


def components() -> list[Component]:
    # Imported here so `peromesh --help` stays fast and optional parts stay optional.
    from bridge.component import BridgeComponent
    from server.dialog.component import CoreComponent
    from server.memory.component import MemoryComponent
    from server.tts.component import TtsComponent

    return [TtsComponent(), MemoryComponent(), CoreComponent(), BridgeComponent()]  # bridge last: it needs the core
