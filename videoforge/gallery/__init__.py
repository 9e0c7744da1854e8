"""The video gallery: use cases 1, 3 and 4."""

from videoforge.gallery.service import Gallery, ListQuery, gallery_ctx

__all__ = ["Gallery", "ListQuery", "gallery_ctx"]
