"""The account pages in headless Chromium against the real app: registering, signing in (password
or token) and out, `next`, JWKS mode, closed registration, and `/me`, the viewer's own library
with inline edits and deletes."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.async_api import Browser, Locator, Page
from playwright.async_api import expect as pw_expect

from tests.browser_support import (
    PHONE,
    Site,
    axe_violations,
)
from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.fixtures.jwks import JwksServer
from tests.gallery_support import (
    ALICE,
    BOB,
    StartGallery,
    expect,
)
from videoforge.auth.sessions import SESSION_COOKIE

PASSWORD = "correct horse battery"
WRONG_PASSWORD_ERROR = "Failed to load resource: the server responded with a status of 401"


async def register(site: Site, username: str) -> None:
    """A local account made through the API, with `PASSWORD`."""
    body = {"username": username, "password": PASSWORD}
    await expect(await site.gallery.client.post("/api/auth/register", json=body), 201)


async def session_user(page: Page, site: Site) -> str | None:
    """Whom the browser's session cookie signs in (asked of the API); None without a cookie."""
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    cookie = cookies.get(SESSION_COOKIE)
    if cookie is None:
        return None
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax", cookie
    headers = {"Authorization": f"Bearer {cookie['value']}"}
    me = await expect(await site.gallery.client.get("/api/auth/me", headers=headers), 200)
    user_id: str = me["user"]["id"]
    return user_id


async def sign_in_with_password(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def sign_in_with_token(page: Page, token: str) -> None:
    await page.get_by_label("Bearer token").fill(token)
    await page.get_by_role("button", name="Sign in with token").click()


def library_row(page: Page, video_id: int) -> Locator:
    """The row of /me that shows this video, whatever its title becomes."""
    return page.locator(f'.library-item[data-video-id="{video_id}"]')


async def other_site(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    browser: Browser,
    tmp_path: Path,
    **sections: dict[str, Any],
) -> Site:
    """The app with these config sections overridden (`auth={...}`), seen from the browser."""
    gallery = await start_gallery(make_config(**sections))
    return Site(gallery, browser, tmp_path)


# --- registering and signing in -------------------------------------------------------------


async def test_register_lands_on_my_videos_signed_in_through_an_httponly_cookie(
    site: Site,
) -> None:
    page = await site.page()
    await page.goto(site.url + "/register")
    assert await axe_violations(page) == []
    await site.screenshot(page, "register")

    await page.get_by_label("Username").fill("carol")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD + "!")
    await page.get_by_role("button", name="Create account").click()
    await pw_expect(page.locator("#register-status")).to_have_text("The passwords do not match.")
    assert await page.get_by_label("Confirm password").get_attribute("aria-invalid") == "true"

    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url(site.url + "/me")
    assert await page.get_by_role("heading", level=1).inner_text() == "My videos"
    nav = page.get_by_role("navigation", name="Main")
    await pw_expect(nav.get_by_role("button", name="Sign out (carol)")).to_be_visible()
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: scripts never see it
    assert await session_user(page, site) == "carol"
    assert await axe_violations(page) == []
    await site.screenshot(page, "me-empty")
    site.assert_no_console_errors()


async def test_register_with_a_taken_name_shows_why(site: Site) -> None:
    await register(site, "carol")
    page = await site.page(viewport=PHONE)
    await page.goto(site.url + "/register")

    await page.get_by_label("Username").fill("Carol")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()

    await pw_expect(page.locator("#register-status")).to_have_text("Username already taken")
    assert await session_user(page, site) is None
    await site.screenshot(page, "register-taken-phone")
    assert site.errors == [
        "Failed to load resource: the server responded with a status of 409 (Conflict)"
    ]


async def test_sign_out_then_in_with_the_password_and_then_with_a_token(site: Site) -> None:
    await register(site, "carol")
    page = await site.page()
    await page.goto(site.url + "/login")
    assert await axe_violations(page) == []
    await site.screenshot(page, "login")

    await sign_in_with_password(page, "carol")
    await page.wait_for_url(site.url + "/")
    assert await session_user(page, site) == "carol"
    await page.get_by_role("button", name="Sign out (carol)").click()
    await page.get_by_role("link", name="Sign in").wait_for()
    assert await session_user(page, site) is None

    await page.goto(site.url + "/login")
    await sign_in_with_token(page, site.gallery.authenticator.issue("carol"))
    await page.wait_for_url(site.url + "/")
    assert await session_user(page, site) == "carol"
    site.assert_no_console_errors()


async def test_wrong_password_shows_the_error_and_stays_signed_out(site: Site) -> None:
    await register(site, "carol")
    page = await site.page(viewport=PHONE)
    await page.goto(site.url + "/login")

    await sign_in_with_password(page, "carol", "not the password")

    status = page.locator("#login-status")
    await pw_expect(status).to_have_text("Invalid username or password")
    assert await status.get_attribute("data-kind") == "error"
    assert await page.locator('[role="status"] #login-status').count() == 1  # a live region
    assert page.url == site.url + "/login"
    assert await session_user(page, site) is None
    await site.screenshot(page, "login-wrong-password-phone")
    assert await axe_violations(page) == []
    assert [error.startswith(WRONG_PASSWORD_ERROR) for error in site.errors] == [True]


async def test_a_bad_token_shows_the_error(site: Site) -> None:
    page = await site.page()
    await page.goto(site.url + "/login")

    await sign_in_with_token(page, "not-a-token")

    await pw_expect(page.locator("#login-status")).to_have_text("Invalid token")
    assert await session_user(page, site) is None


async def test_next_is_followed_only_to_a_path_on_this_site(site: Site) -> None:
    await register(site, "carol")
    page = await site.page()
    await page.goto(site.url + "/me")
    await page.wait_for_url(site.url + "/login?next=/me")
    await sign_in_with_password(page, "carol")
    await page.wait_for_url(site.url + "/me")

    token = site.gallery.authenticator.issue("carol")
    for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example/", "me"):
        page = await site.page()
        await page.goto(f"{site.url}/login?next={quote(elsewhere, safe='')}")
        await sign_in_with_token(page, token)
        await page.wait_for_url(site.url + "/")
    site.assert_no_console_errors()


async def test_jwks_mode_hides_the_password_form_and_register_explains(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    browser: Browser,
    tmp_path: Path,
    jwks_server: JwksServer,
) -> None:
    site = await other_site(
        start_gallery,
        make_config,
        browser,
        tmp_path,
        auth={"mode": "jwks", "jwks_url": jwks_server.url, "issuer": jwks_server.issuer},
    )
    try:
        page = await site.page()
        await page.goto(site.url + "/login")
        assert await page.get_by_label("Password").count() == 0
        assert await page.locator("#password-form").count() == 0
        await pw_expect(page.get_by_text("identity provider").first).to_be_visible()
        assert await page.get_by_role("link", name="Register").count() == 0
        assert await axe_violations(page) == []
        await site.screenshot(page, "login-jwks")

        await sign_in_with_token(page, jwks_server.mint(jwks_server.claims(sub="dana")))
        await page.wait_for_url(site.url + "/")
        assert await session_user(page, site) == "dana"

        await page.goto(site.url + "/register")
        assert await page.locator("form#register-form").count() == 0
        await pw_expect(page.get_by_text("nothing to register here")).to_be_visible()
        await site.screenshot(page, "register-jwks")
        assert await axe_violations(page) == []
        site.assert_no_console_errors()
    finally:
        await site.close()


async def test_closed_registration_says_so_without_a_form(
    start_gallery: StartGallery, make_config: MakeConfig, browser: Browser, tmp_path: Path
) -> None:
    closed = {"allow_registration": False}
    site = await other_site(start_gallery, make_config, browser, tmp_path, auth=closed)
    try:
        page = await site.page()
        await page.goto(site.url + "/register")
        assert await page.locator("form#register-form").count() == 0
        await pw_expect(page.get_by_text("Registration is closed")).to_be_visible()
        assert await axe_violations(page) == []

        await page.goto(site.url + "/login")
        assert await page.locator(".aside").count() == 0  # no "No account yet? Register"
        site.assert_no_console_errors()
    finally:
        await site.close()


# --- my videos ----------------------------------------------------------------------------------


async def test_my_videos_lists_all_of_mine_in_every_visibility_and_nobody_elses(
    site: Site,
) -> None:
    await site.gallery.upload(ALICE, title="Public pasta", description="Boil water.\nAdd salt.")
    await site.gallery.upload(ALICE, title="Unlisted pottery", visibility="unlisted")
    await site.gallery.upload(ALICE, title="Private diary", visibility="private")
    await site.gallery.upload(BOB, title="Bob's cat")

    for viewport, name in ((None, "me"), (PHONE, "me-phone")):
        page = await site.page(ALICE, viewport=viewport)
        await page.goto(site.url + "/me")
        titles = await page.locator(".library-title").all_inner_texts()
        assert sorted(titles) == ["Private diary", "Public pasta", "Unlisted pottery"]
        visibilities = await page.locator('[data-field="visibility"]').all_inner_texts()
        assert sorted(visibilities) == ["Private", "Public", "Unlisted"]
        assert await page.locator("#library-count").inner_text() == "3 videos"
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        assert await axe_violations(page) == []
        await site.screenshot(page, name)
    site.assert_no_console_errors()


async def test_my_videos_edits_title_description_and_visibility_in_place(site: Site) -> None:
    video = await site.gallery.upload(ALICE, title="Old title", description="Old words")
    page = await site.page(ALICE)
    await page.goto(site.url + "/me")
    await page.evaluate("window.notReloaded = true")
    row = library_row(page, video["id"])

    edit = row.get_by_role("button", name="Edit")
    await edit.click()
    assert await edit.get_attribute("aria-expanded") == "true"
    await row.get_by_label("Title").fill("New title")
    await row.get_by_label("Description").fill("New words\non two lines")
    await row.get_by_label("Visibility").select_option("private")
    assert await axe_violations(page) == []
    await site.screenshot(page, "me-editing")
    await row.get_by_role("button", name="Save").click()

    await pw_expect(page.locator("#library-status")).to_have_text("Saved “New title”.")
    await pw_expect(row.locator(".library-title")).to_have_text("New title")
    await pw_expect(row.locator('[data-field="visibility"]')).to_have_text("Private")
    assert await row.locator(".edit-form").is_hidden()
    assert await page.evaluate("window.notReloaded") is True
    record = await expect(await site.gallery.details(video["id"], ALICE), 200)
    assert (record["title"], record["description"], record["visibility"]) == (
        "New title",
        "New words\non two lines",
        "private",
    )
    site.assert_no_console_errors()


async def test_my_videos_deletes_a_video_only_after_confirming(site: Site) -> None:
    kept = await site.gallery.upload(ALICE, title="Holiday")
    doomed = await site.gallery.upload(ALICE, title="Outtakes")
    page = await site.page(ALICE)
    await page.goto(site.url + "/me")
    row = library_row(page, doomed["id"])
    dialog = page.get_by_role("dialog")

    await row.get_by_role("button", name="Delete").click()
    await pw_expect(dialog).to_be_visible()
    await pw_expect(dialog).to_contain_text("“Outtakes”")
    assert await axe_violations(page) == []
    await site.screenshot(page, "me-delete-dialog")
    await dialog.get_by_role("button", name="Cancel").click()
    await pw_expect(dialog).to_be_hidden()
    await expect(await site.gallery.details(doomed["id"], ALICE), 200)

    await row.get_by_role("button", name="Delete").click()
    await dialog.get_by_role("button", name="Delete").click()
    await pw_expect(page.locator("#library-status")).to_have_text("Deleted “Outtakes”.")
    await pw_expect(row).to_have_count(0)
    assert await page.locator("#library-count").inner_text() == "1 video"
    await assert_error(await site.gallery.details(doomed["id"], ALICE), 404, "Video not found")
    await expect(await site.gallery.details(kept["id"], ALICE), 200)
    site.assert_no_console_errors()


async def test_my_videos_paginates_with_links(
    start_gallery: StartGallery, make_config: MakeConfig, browser: Browser, tmp_path: Path
) -> None:
    pages = {"library_page_size": 2}
    site = await other_site(start_gallery, make_config, browser, tmp_path, pages=pages)
    try:
        for title in ("First", "Second", "Third"):
            await site.gallery.upload(ALICE, title=title)
        page = await site.page(ALICE)

        await page.goto(site.url + "/me")
        assert await page.locator(".library-title").all_inner_texts() == ["Third", "Second"]
        await page.get_by_role("link", name="Next").click()
        await page.wait_for_url(site.url + "/me?page=2")
        assert await page.locator(".library-title").all_inner_texts() == ["First"]
        assert await page.locator("#library-count").inner_text() == "3 videos"
        await pw_expect(page.get_by_role("link", name="Previous")).to_be_visible()
        site.assert_no_console_errors()
    finally:
        await site.close()
