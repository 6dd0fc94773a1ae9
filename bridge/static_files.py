"""Plain HTTP next to the WebSocket: the web console and the JS SDK.

`GET /` serves bridge/static/index.html, `/static/*` the console's files and
`/js/*` the SDK (bridge/js/). Files are read once at start (a few KiB); the
WebSocket path (`/ws`) is left to the WebSocket handshake.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

ROOT = Path(__file__).resolve().parent
MOUNTS = {"/static/": ROOT / "static", "/js/": ROOT / "js"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
          ".ts": "text/plain; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}


class StaticSite:
    def __init__(self, ws_path: str = "/ws") -> None:
        self.ws_path = ws_path
        self.files: dict[str, tuple[bytes, str]] = {}
        for prefix, folder in MOUNTS.items():
            for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
                if path.is_file() and "__pycache__" not in path.parts:
                    self.files[prefix + path.relative_to(folder).as_posix()] = (path.read_bytes(), _type(path))
        if "/static/index.html" in self.files:
            self.files["/"] = self.files["/static/index.html"]

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' hook: None lets the handshake go on (only on the WebSocket path)."""
        path = request.path.split("?", 1)[0]
        if path == self.ws_path:
            return None
        found = self.files.get(path)
        if found is None:
            return _response(404, "Not Found", f"no such page: {path}\n".encode(), "text/plain; charset=utf-8")
        body, content_type = found
        return _response(200, "OK", body, content_type)


def _type(path: Path) -> str:
    return _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _response(status: int, reason: str, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")])
    return Response(status, reason, headers, body)
