"""One log line per admin action, naming the admin, so every change can be traced to a person."""

from __future__ import annotations

import logging
from typing import Any

from videoforge.auth.tokens import Principal

log = logging.getLogger("videoforge.admin")


def audit(admin: Principal, action: str, **details: Any) -> None:
    """Log `action` by `admin` with its outcome (`details`, as key=value pairs)."""
    outcome = " ".join(f"{name}={value}" for name, value in details.items())
    log.info("admin %s: %s %s", admin.user_id, action, outcome)
