"""The pages: Jinja templates rendered on the server, calling the same domain functions as the
JSON API; their scripts call that API."""

from __future__ import annotations

from aiohttp import web

from videoforge.config import Config
from videoforge.web.pages import account, gallery, watch
from videoforge.web.pages.render import setup_rendering


def setup_pages(app: web.Application, config: Config) -> None:
    """Templates, static files and every page route."""
    setup_rendering(app, config)
    for module in (gallery, watch, account):
        app.add_routes(module.routes)
