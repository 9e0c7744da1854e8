"""HMAC-signed, expiring URLs for the local backend, and the secret they are signed with."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from videoforge.errors import Forbidden, StorageError

SECRET_BYTES = 32


class UrlSigner:
    """Signs and verifies (method, key, expiry, content type) with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, method: str, key: str, expires: int, content_type: str = "") -> str:
        """Hex HMAC-SHA256; keys and content types hold no control characters, so the
        newline-joined message is unambiguous."""
        message = "\n".join((method, key, str(expires), content_type)).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(
        self, method: str, key: str, expires: str, signature: str, content_type: str = ""
    ) -> None:
        """Raise `Forbidden` unless the signature matches and has not expired."""
        try:
            expires_at = int(expires)
        except ValueError:
            raise Forbidden("Invalid or missing URL signature") from None
        expected = self.sign(method, key, expires_at, content_type)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise Forbidden("Invalid or missing URL signature")
        if expires_at < time.time():
            raise Forbidden("URL expired")


def load_or_create_secret(path: Path) -> bytes:
    """Read the signing secret at `path`, creating it (mode 0600) if absent.

    The new secret is written to a private temp file and hard-linked into place: the link
    fails if another process got there first, so every process ends up with the same secret.
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_bytes(SECRET_BYTES).hex())
            fh.flush()
            os.fsync(fh.fileno())
        # Losing the race is fine: the winner's secret is the one everybody reads.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except ValueError:
        raise StorageError(f"{path}: storage secret is not hex; delete it to regenerate") from None
    if len(secret) < SECRET_BYTES:
        raise StorageError(f"{path}: storage secret is too short; delete it to regenerate")
    return secret
