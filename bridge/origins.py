"""Which web pages may open the Gateway WebSocket: the `Origin` check.

A browser lets any page the user visits open a WebSocket to 127.0.0.1; only the `Origin` header
tells the bridge whose page it is. Allowed by default: no Origin at all (native clients, Electron's
main process, scripts) and the bridge's own origin (the console it serves, same host and port as
the request's `Host`). Anything else needs `--bridge-allowed-origins` (exact origins such as
`https://app.example`, or `*` for any); a refused handshake gets HTTP 403 with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from websockets.http11 import Request

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class OriginPolicy:
    allowed: frozenset[str] = frozenset()  # normalized origins ("scheme://host[:port]"), "*", "null"

    @classmethod
    def of(cls, origins: Iterable[str]) -> OriginPolicy:
        return cls(frozenset(_normalize(o) for o in origins if o.strip()))

    def refusal(self, request: Request) -> str | None:
        """Why the handshake of `request` is refused, or None when its origin may connect."""
        origin = request.headers.get("Origin")
        if origin is None or "*" in self.allowed:
            return None
        if _normalize(origin) in self.allowed or _same_origin(origin, request.headers.get("Host", "")):
            return None
        return (f"origin {origin!r} may not open the Gateway WebSocket: only this bridge's own pages and "
                f"native clients may; start the bridge with --bridge-allowed-origins {origin} to allow it")


def _normalize(origin: str) -> str:
    origin = origin.strip()
    if origin in ("*", "null"):
        return origin
    parts = urlsplit(origin.lower())
    if not parts.scheme or not parts.hostname:
        return origin.lower()
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _same_origin(origin: str, host: str) -> bool:
    """`origin` names the host and port the request was sent to (the page came from this bridge)."""
    try:
        parts = urlsplit(origin.lower())
        target = urlsplit(f"//{host.lower()}")
        origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        host_port = target.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and \
        parts.hostname == target.hostname and origin_port == host_port
