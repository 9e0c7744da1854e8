"""The gallery page `/` in headless Chromium: server-rendered, searchable, paginated, usable
without JavaScript and on a phone, escaped, accessible; a card animates its preview on hover and
focus."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Locator

from tests.browser_support import (
    PHONE,
    Site,
    axe_violations,
)
from tests.gallery_support import (
    ALICE,
    BOB,
)
from videoforge import keys
from videoforge.db import videos as videos_db

# One-pixel GIFs, black and white: the still thumbnail and the "animated" preview.
STILL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
PREVIEW_GIF = bytes.fromhex(
    "47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b"
)


async def video_with_preview(site: Site, title: str) -> dict[str, Any]:
    """A public video whose record names a stored thumbnail and animated preview, as a
    transcode leaves them (without running one: the page reads only the record)."""
    video = await site.gallery.upload(ALICE, title=title)
    base = f"videos/output/test-{video['id']}"
    changes = {"thumbnail_key": f"{base}/thumbnail.gif", "preview_key": f"{base}/preview.gif"}
    await site.gallery.storage.put_bytes(changes["thumbnail_key"], STILL_GIF, "image/gif")
    await site.gallery.storage.put_bytes(changes["preview_key"], PREVIEW_GIF, "image/gif")
    await videos_db.update_video(site.gallery.app[keys.DB], video["id"], changes)
    await site.gallery.app[keys.GALLERY].invalidate(video["id"])
    return video


async def shown_image(card: Locator) -> str:
    """Which stored image the card's thumbnail shows: `thumbnail` or `preview`."""
    src = await card.locator("img").get_attribute("src") or ""
    return src.split("?")[0].rsplit("/", 1)[-1].removesuffix(".gif")


async def test_gallery_lists_public_videos_and_searches_without_javascript(
    site: Site, browser: Browser
) -> None:
    await site.gallery.upload(ALICE, title="Cooking pasta")
    await site.gallery.upload(ALICE, title="Tutorial: pottery")
    await site.gallery.upload(BOB, title="Secret diary", visibility="private")
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()

    await page.goto(site.url + "/")
    titles = await page.locator(".video-card .title").all_inner_texts()
    assert sorted(titles) == ["Cooking pasta", "Tutorial: pottery"]

    await page.get_by_label("Search videos").fill("tutorial")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url("**/?search=tutorial")
    assert await page.locator(".video-card .title").all_inner_texts() == ["Tutorial: pottery"]
    assert await page.get_by_role("heading", level=1).inner_text() == ("Videos matching “tutorial”")
    await site.screenshot(page, "gallery-search")
    await context.close()


async def test_gallery_paginates_with_links(site: Site) -> None:
    page_size = site.gallery.config.pages.gallery_page_size
    for n in range(page_size + 1):
        await site.gallery.upload(ALICE, title=f"Clip {n:02d}")
    page = await site.page()

    await page.goto(site.url + "/")
    assert await page.locator(".video-card").count() == page_size
    await page.get_by_role("link", name="Next").click()
    await page.wait_for_url("**/?page=2")
    assert await page.locator(".video-card .title").all_inner_texts() == ["Clip 00"]
    assert await page.get_by_role("link", name="Previous").is_visible()
    site.assert_no_console_errors()


async def test_gallery_escapes_titles_and_sends_a_content_security_policy(site: Site) -> None:
    await site.gallery.upload(ALICE, title="<img src=x onerror=alert(1)>")
    page = await site.page()

    response = await page.goto(site.url + "/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    title = page.locator(".video-card .title")
    assert await title.inner_text() == "<img src=x onerror=alert(1)>"
    assert await page.locator(".video-card .title img").count() == 0


async def test_gallery_fits_a_phone_screen_and_passes_the_accessibility_check(
    site: Site,
) -> None:
    await site.gallery.upload(ALICE, title="A rather long title for a small screen " * 3)
    page = await site.page(viewport=PHONE)

    await page.goto(site.url + "/")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await site.screenshot(page, "gallery-phone")
    assert await axe_violations(page) == []
    site.assert_no_console_errors()


async def test_gallery_signed_in_shows_the_members_menu(site: Site) -> None:
    page = await site.page(ALICE)

    await page.goto(site.url + "/")
    nav = page.get_by_role("navigation", name="Main")
    assert await nav.get_by_role("link", name="Upload").is_visible()
    assert await nav.get_by_role("link", name="Admin").count() == 0

    await nav.get_by_role("button", name="Sign out (alice)").click()
    await page.wait_for_url(site.url + "/")
    await page.get_by_role("link", name="Sign in").wait_for()
    site.assert_no_console_errors()


async def test_gallery_card_animates_its_preview_on_hover_and_focus_but_not_on_touch(
    site: Site,
) -> None:
    await video_with_preview(site, "Bars")
    await site.gallery.upload(ALICE, title="No images yet")
    page = await site.page()

    await page.goto(site.url + "/")
    card = page.locator(".video-card", has_text="Bars")
    link = card.get_by_role("link")
    box = await card.locator(".thumb").bounding_box()
    assert await shown_image(card) == "thumbnail"

    await card.locator(".thumb").hover()
    await page.wait_for_function(
        "() => document.querySelector('.video-card img').complete", polling=100
    )
    assert await shown_image(card) == "preview"
    assert await card.locator(".thumb").bounding_box() == box  # the same box: nothing moves
    await page.mouse.move(0, 0)
    assert await shown_image(card) == "thumbnail"

    await link.focus()
    assert await shown_image(card) == "preview"
    await link.blur()
    assert await shown_image(card) == "thumbnail"

    # A finger on its way down the page: no preview.
    await link.dispatch_event("pointerenter", {"pointerType": "touch"})
    assert await shown_image(card) == "thumbnail"
    assert await page.locator(".video-card", has_text="No images yet").locator("img").count() == 0
    assert await axe_violations(page) == []
    site.assert_no_console_errors()


async def test_gallery_card_keeps_the_still_for_readers_who_ask_for_less_motion(
    site: Site,
) -> None:
    await video_with_preview(site, "Bars")
    page = await site.page()
    await page.emulate_media(reduced_motion="reduce")

    await page.goto(site.url + "/")
    card = page.locator(".video-card", has_text="Bars")
    await card.locator(".thumb").hover()
    await card.get_by_role("link").focus()

    assert await shown_image(card) == "thumbnail"
    site.assert_no_console_errors()
