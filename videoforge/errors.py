"""The one error hierarchy: each class knows its HTTP status and default message."""

from __future__ import annotations

from typing import Any, ClassVar


class VideoforgeError(Exception):
    """Internal server error"""

    status: ClassVar[int] = 500

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or (type(self).__doc__ or "Error").strip()
        self.details = details
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Headers the error response carries besides the JSON body."""
        return {}

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(VideoforgeError):
    """Invalid request"""

    status = 400


class ValidationFailed(BadRequest):
    """Invalid request body"""


class Unauthorized(VideoforgeError):
    """Authentication required"""

    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(VideoforgeError):
    """Access denied"""

    status = 403


class NotFound(VideoforgeError):
    """Not found"""

    status = 404


class Conflict(VideoforgeError):
    """Conflict"""

    status = 409


class PayloadTooLarge(VideoforgeError):
    """Request body too large"""

    status = 413


class UnsupportedMediaType(VideoforgeError):
    """Unsupported media type"""

    status = 415


class TooManyRequests(VideoforgeError):
    """Too many requests"""

    status = 429

    def __init__(self, message: str | None = None, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(VideoforgeError):
    """Service unavailable"""

    status = 503


class StorageError(VideoforgeError):
    """Storage operation failed"""

    status = 502


class ObjectNotFound(NotFound):
    """Object not found"""


class InvalidKey(BadRequest):
    """Invalid storage key"""
