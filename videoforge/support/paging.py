"""Page numbers to row offsets, and the `pagination` object every listing answers with."""

from __future__ import annotations

import math
from typing import Any

# The most rows one page of any listing holds: a larger `limit` is capped, not refused.
MAX_LIMIT = 100
# PostgreSQL's OFFSET is a bigint; any page that far out is empty anyway.
MAX_OFFSET = 2**62


def row_offset(page: int, limit: int) -> int:
    """The first row of `page` (1-based) at `limit` rows a page."""
    return min((page - 1) * limit, MAX_OFFSET)


def pagination_json(total: int, page: int, limit: int) -> dict[str, Any]:
    """`{total, page, limit, totalPages}`, as every paginated route answers."""
    return {"total": total, "page": page, "limit": limit, "totalPages": math.ceil(total / limit)}
