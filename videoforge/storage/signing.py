"""HMAC-signed, expiring URLs for the local backend, and the secret they are signed with."""

from __future__ import annotations

import hashlib
import hmac
import time

from videoforge.errors import Forbidden

SECRET_BYTES = 32


class UrlSigner:
    """Signs and verifies (method, key, expiry, content type, size) with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(
        self, method: str, key: str, expires: int, content_type: str = "", size: int | None = None
    ) -> str:
        """Hex HMAC-SHA256; keys and content types hold no control characters, so the
        newline-joined message is unambiguous. A size is only added when there is one, so
        URLs without one keep the signature they always had."""
        parts = [method, key, str(expires), content_type]
        if size is not None:
            parts.append(str(size))
        message = "\n".join(parts).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(
        self,
        method: str,
        key: str,
        expires: str,
        signature: str,
        content_type: str = "",
        size: int | None = None,
    ) -> None:
        """Raise `Forbidden` unless the signature matches and has not expired."""
        try:
            expires_at = int(expires)
        except ValueError:
            raise Forbidden("Invalid or missing URL signature") from None
        expected = self.sign(method, key, expires_at, content_type, size)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise Forbidden("Invalid or missing URL signature")
        if expires_at < time.time():
            raise Forbidden("URL expired")
