"""The public gallery page `/`: server-rendered, so it works without JavaScript."""

from __future__ import annotations

from aiohttp import web

from videoforge import keys
from videoforge.gallery.service import ListQuery
from videoforge.web.pages.render import page_number, pagination, render

MAX_SEARCH_LENGTH = 200

routes = web.RouteTableDef()


@routes.get("/", name="gallery")
async def gallery_page(request: web.Request) -> web.Response:
    """The public gallery: a server-rendered grid with search and pagination."""
    page = page_number(request.query.get("page"))
    search = request.query.get("search", "").strip()[:MAX_SEARCH_LENGTH]
    size = request.app[keys.CONFIG].pages.gallery_page_size
    query = ListQuery(page=page, limit=size, search=search or None)
    # Listed as an anonymous viewer: the public gallery is the same for everyone, so one
    # cached page serves every visitor.
    listing = await request.app[keys.GALLERY].listing(None, query)
    total_pages = listing["pagination"]["totalPages"]
    return await render(
        request,
        "gallery.html",
        {
            "videos": listing["videos"],
            "search": search,
            "total": listing["pagination"]["total"],
            **pagination("/", {"search": search}, page, total_pages),
        },
    )
