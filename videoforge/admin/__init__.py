"""What admins do to keep the service healthy: steer jobs, reclaim storage, see who uses it."""

GIB = 1024**3


def gigabytes(size: int) -> float:
    """Bytes as the GB figures admin routes answer with (binary GB, to about a kilobyte)."""
    return round(size / GIB, 6)
