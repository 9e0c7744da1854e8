"""The public gallery page `/`: server-rendered, so it works without JavaScript."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from aiohttp import web

from videoforge import keys
from videoforge.gallery import Gallery
from videoforge.gallery.service import ListQuery
from videoforge.web.pages.render import page_number, pagination, render

GALLERY_PAGE_SIZE = 24
MAX_SEARCH_LENGTH = 200

routes = web.RouteTableDef()


@routes.get("/", name="gallery")
async def gallery_page(request: web.Request) -> web.Response:
    """The public gallery: a server-rendered grid with search and pagination."""
    page = page_number(request.query.get("page"))
    search = request.query.get("search", "").strip()[:MAX_SEARCH_LENGTH]
    query = ListQuery(page=page, limit=GALLERY_PAGE_SIZE, search=search or None)
    gallery: Gallery = request.app[keys.GALLERY]
    # Listed as an anonymous viewer: the public gallery is the same for everyone, so one
    # cached page serves every visitor. It is cached under the query string that asks the API
    # for the same listing, so the API and the page share entries and never disagree.
    params = {"limit": GALLERY_PAGE_SIZE, "page": page, **({"search": search} if search else {})}
    api_query = urlencode(params)
    body = await gallery.cached_page(None, api_query) or await gallery.list_page(
        None, query, api_query
    )
    listing = json.loads(body)
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
