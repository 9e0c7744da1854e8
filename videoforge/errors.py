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


class RangeNotSatisfiable(VideoforgeError):
    """Requested range not satisfiable"""

    status = 416

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


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


# How long a client is told to wait while a service we need is down: long enough not to hammer
# it, short enough that a restart (a few seconds) is noticed soon.
OUTAGE_RETRY_AFTER_S = 5


class ServiceUnavailable(VideoforgeError):
    """Service temporarily unavailable"""

    status = 503
    # What clients are told: the message names hosts and driver errors, which are for the log.
    public_message: ClassVar[str] = "Service temporarily unavailable"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Any = None,
        component: str = "service",
        retry_after: int = OUTAGE_RETRY_AFTER_S,
    ) -> None:
        super().__init__(message, details=details)
        self.component = component
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.public_message}


class StorageError(VideoforgeError):
    """Storage operation failed"""

    status = 502


class StorageUnavailable(ServiceUnavailable, StorageError):
    """Storage unavailable"""

    # Unreachable, not refused: a 503 to clients, and still a StorageError to code that
    # retries storage failures (the worker's transfers).

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, component="storage")


class ObjectNotFound(NotFound):
    """Object not found"""


class InvalidKey(BadRequest):
    """Invalid storage key"""
