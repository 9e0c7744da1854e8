"""Secrets generated once under data_dir (mode 0600) and shared by every process using it."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from videoforge.config import Config, ConfigError

SECRET_BYTES = 32

log = logging.getLogger(__name__)


def server_secret(config: Config) -> bytes:
    """The key for the server's own signatures (HLS tokens, CSRF tokens): `server.secret_key`,
    else a secret generated once under data_dir, so every process of one deployment agrees."""
    configured = config.server.secret_key
    if configured:
        return configured.encode()
    return load_or_create_secret(config.data_dir / "server.secret")


def load_or_create_secret(path: Path) -> bytes:
    """Read the hex secret at `path`, creating it (mode 0600) if absent.

    A new secret is written to a private temp file and hard-linked into place: the link fails
    if another process got there first, so every process ends up with the same secret.
    """
    if not path.exists():
        _create(path)
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        secret = b""
    if len(secret) < SECRET_BYTES:
        raise ConfigError(
            f"{path}: must hold at least {SECRET_BYTES} hex bytes; delete it to regenerate"
        )
    if path.stat().st_mode & 0o077:
        log.warning("secret %s is readable by other users; chmod 600 it", path)
    return secret


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(SECRET_BYTES) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        # Losing the race is fine: the winner's secret is the one everybody reads.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
