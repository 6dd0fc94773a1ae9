"""The mesh token: given, or created once into the data dir (readable by this user only)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


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
