"""A page that does not exist: a browser gets the site's error page, everyone else the JSON."""

from __future__ import annotations

import pytest

from tests.gallery_support import Gallery
from tests.test_app import StartApp, start_app  # noqa: F401 (the fixture)

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_a_browser_asking_for_an_unknown_page_gets_the_html_error_page(
    gallery: Gallery,
) -> None:
    response = await gallery.client.get("/nope", headers=BROWSER)
    assert response.status == 404
    assert response.content_type == "text/html"
    page = await response.text()
    assert "Page not found" in page and "<h1" in page
    assert "Content-Security-Policy" in response.headers  # the pages' own headers


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/nope", {}),  # a script or a client of the API
        ("/nope", {"Accept": "application/json"}),
        ("/api/nope", BROWSER),
    ],
)
async def test_other_unknown_paths_still_answer_json(
    gallery: Gallery, path: str, headers: dict[str, str]
) -> None:
    response = await gallery.client.get(path, headers=headers)
    assert response.status == 404
    assert await response.json() == {"error": "Not found"}


async def test_a_missing_asset_is_not_answered_with_a_page(gallery: Gallery) -> None:
    response = await gallery.client.get("/static/nope.js", headers=BROWSER)
    assert response.status == 404
    assert response.content_type != "text/html"


async def test_a_worker_serving_no_pages_answers_json(start_app: StartApp) -> None:  # noqa: F811
    client = await start_app(role="worker")
    response = await client.get("/nope", headers=BROWSER)
    assert response.status == 404
    assert await response.json() == {"error": "Not found"}
