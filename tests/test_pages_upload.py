"""The upload page `/upload` in headless Chromium: a real upload to the signed URL with a byte
progress bar, then the transcoding job followed over server-sent events to its end; a file over
the multipart threshold goes up in parts through Uppy, several at a time, and survives a failed
part, a pause and a lost connection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Request, Route

from tests.browser_support import (
    PHONE,
    Site,
    StartSite,
    axe_violations,
)
from tests.gallery_support import (
    ALICE,
    expect,
)
from tests.jobs_support import JOB_TIMEOUT
from tests.media import Media
from videoforge.storage.multipart import UploadNotFound
from videoforge.web.pages.watch import UPPY_SCRIPT

MiB = 1024**2
PART_SIGN_PATH = re.compile(r"/api/uploads/s3/multipart/([^/?]+)/\d+$")
# Chromium reports each request that fails while offline on the console: the browser's words.
OFFLINE_ERROR = "Failed to load resource: net::ERR_INTERNET_DISCONNECTED"
SERVER_ERROR = (
    "Failed to load resource: the server responded with a status of 500 (Internal Server Error)"
)

PROGRESS_TEXT = re.compile(r"\d+\.\d (kB|MB) of \d+\.\d (kB|MB) \(\d+%\)")


async def fill_form(page: Page, clip: str, title: str, renditions: tuple[str, ...]) -> None:
    """Pick `clip`, give it a title and keep only `renditions` checked."""
    await page.get_by_label("Video file").set_input_files(clip)
    await page.get_by_label("Title", exact=True).fill(title)
    for quality in ("High", "Medium", "Low"):
        await page.get_by_label(quality, exact=True).set_checked(quality.lower() in renditions)


async def record_upload_progress(page: Page) -> None:
    """Keep every value the upload bar takes in `window.uploadValues`."""
    await page.evaluate(
        """() => {
            window.uploadValues = [];
            const bar = document.getElementById("upload-progress");
            new MutationObserver(() => window.uploadValues.push([bar.value, bar.max]))
                .observe(bar, {attributes: true, attributeFilter: ["value"]});
        }"""
    )


async def test_upload_shows_byte_progress_then_follows_the_job_to_a_watch_link(
    site: Site, media: Media
) -> None:
    clip = media.landscape()
    page = await site.page(ALICE)
    await page.goto(site.url + "/upload")
    await fill_form(page, str(clip), "Test pattern", renditions=("low",))
    await page.get_by_label("Description").fill("Three seconds of colour bars.")
    await page.get_by_label("Visibility").select_option("unlisted")
    await record_upload_progress(page)

    await page.get_by_role("button", name="Upload").click()
    watch = page.get_by_role("link", name="Watch")
    await watch.wait_for(timeout=JOB_TIMEOUT * 1000)

    size = clip.stat().st_size
    values = await page.evaluate("window.uploadValues")
    assert values[-1] == [size, size], values  # set by the XHR's own progress events
    assert [v for v, _ in values] == sorted(v for v, _ in values)
    upload_text = await page.locator("#upload-progress-text").inner_text()
    assert PROGRESS_TEXT.fullmatch(upload_text) and upload_text.endswith("(100%)"), upload_text
    assert await page.locator("#job-progress").evaluate("bar => [bar.value, bar.max]") == [100, 100]
    assert await page.locator("#job-progress-text").inner_text() == "Ready (100%)"
    assert await page.get_by_role("status").inner_text() == "Your video is ready."

    href = await watch.get_attribute("href")
    assert href is not None and re.fullmatch(r"/videos/\d+", href)
    video = await expect(await site.gallery.details(href.rsplit("/", 1)[1], ALICE), 200)
    assert (video["status"], video["title"], video["visibility"]) == (
        "ready",
        "Test pattern",
        "unlisted",
    )
    assert video["description"] == "Three seconds of colour bars."
    await site.screenshot(page, "upload-done")
    assert await axe_violations(page) == []
    site.assert_no_console_errors()


async def test_upload_whose_job_fails_shows_the_jobs_error(site: Site, media: Media) -> None:
    page = await site.page(ALICE)
    await page.goto(site.url + "/upload")
    await fill_form(page, str(media.corrupt()), "Not a video", renditions=("low",))

    await page.get_by_role("button", name="Upload").click()
    job_text = page.locator("#job-progress-text")
    await job_text.get_by_text("Failed", exact=True).wait_for(timeout=JOB_TIMEOUT * 1000)

    jobs = await expect(await site.gallery.request("GET", "/api/jobs", ALICE), 200)
    error_text = jobs["jobs"][0]["errorText"]
    assert error_text.startswith("Metadata extraction failed")
    status = page.get_by_role("status")
    assert await status.inner_text() == f"Processing failed: {error_text}"
    assert await status.get_attribute("data-kind") == "error"
    assert await page.get_by_role("link", name="Watch").count() == 0
    assert await page.get_by_role("button", name="Upload").is_enabled()
    await site.screenshot(page, "upload-failed")
    site.assert_no_console_errors()


async def test_upload_refused_by_the_api_shows_why_and_re_enables_the_form(site: Site) -> None:
    page = await site.page(ALICE)
    await page.goto(site.url + "/upload")
    await page.get_by_label("Video file").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a video"}
    )
    await page.get_by_label("Title", exact=True).fill("Notes")

    await page.get_by_role("button", name="Upload").click()
    status = page.get_by_role("status")
    await status.get_by_text("Only video uploads are allowed").wait_for()

    assert await status.get_attribute("data-kind") == "error"
    assert await page.get_by_role("button", name="Upload").is_enabled()
    assert await page.get_by_label("Title", exact=True).input_value() == "Notes"
    listed = await site.gallery.listing(ALICE, mine="true")
    assert listed["videos"] == []


async def test_upload_page_signed_out_redirects_to_sign_in(site: Site) -> None:
    response = await site.gallery.client.get("/upload", allow_redirects=False)

    assert response.status == 302
    assert response.headers["Location"] == "/login?next=/upload"


async def test_upload_page_fits_a_phone_and_passes_the_accessibility_check(site: Site) -> None:
    page = await site.page(ALICE, viewport=PHONE)

    response = await page.goto(site.url + "/upload")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    legend = page.get_by_role("group", name="Renditions to make")
    assert await legend.get_by_role("checkbox").count() == 3
    await site.screenshot(page, "upload-phone")
    assert await axe_violations(page) == []
    site.assert_no_console_errors()


@pytest.fixture(name="parts_site")
async def parts_site_fixture(start_site: StartSite) -> Site:
    """The site with parts from 5 MiB up (S3's smallest part), so a 12 MiB file has three."""
    assert UPPY_SCRIPT.is_file(), "Uppy is missing: `make` vendors it from node_modules"
    return await start_site(storage={"multipart_threshold": 5 * MiB})


def part_number(request: Request) -> int | None:
    """The part a PUT to a part URL carries (local storage signs the number into its query)."""
    if request.method != "PUT":
        return None
    numbers = parse_qs(urlsplit(request.url).query).get("partNumber")
    return int(numbers[0]) if numbers else None


@dataclass
class PartsSent:
    """What the page sends: PUTs per part number, and the upload its part URLs were signed for;
    also the most part PUTs it had in flight at once."""

    sent: Counter[int] = field(default_factory=Counter)
    uploads: set[tuple[str, str]] = field(default_factory=set)  # (key, uploadId)
    answered: set[int] = field(default_factory=set)  # parts whose PUT storage answered
    in_flight: set[Request] = field(default_factory=set)
    most_in_flight: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def watch(self, page: Page) -> None:
        page.on("request", self.on_request)
        page.on("requestfinished", self.on_finished)
        page.on("requestfailed", self.on_failed)

    def on_request(self, request: Request) -> None:
        if (number := part_number(request)) is not None:
            self.sent[number] += 1
            self.in_flight.add(request)
            self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
            self.changed.set()
        url = urlsplit(request.url)
        if match := PART_SIGN_PATH.search(url.path):
            self.uploads.add((parse_qs(url.query)["key"][0], match[1]))

    def on_finished(self, request: Request) -> None:
        self.in_flight.discard(request)
        if (number := part_number(request)) is not None:
            self.answered.add(number)
            self.changed.set()

    def on_failed(self, request: Request) -> None:
        self.in_flight.discard(request)

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        """Wait until `condition` holds of what the page has sent."""
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    @property
    def upload(self) -> tuple[str, str]:
        (only,) = self.uploads
        return only


@dataclass
class PartHeld:
    """Holds the first PUT of one part unanswered, then fails it (`error`) once released."""

    number: int
    error: str = "failed"
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def hold(self, page: Page) -> None:
        await page.route(lambda url: f"partNumber={self.number}" in url, self.route)

    async def route(self, route: Route) -> None:
        if part_number(route.request) != self.number or self.arrived.is_set():
            await route.fallback()
            return
        self.arrived.set()
        await self.release.wait()
        with contextlib.suppress(PlaywrightError):  # the page may have dropped it already
            await route.abort(self.error)


async def start_large_upload(
    site: Site, tmp_path: Path, mib: int = 12
) -> tuple[Page, PartsSent, bytes]:
    """Pick a file of `mib` MiB (12: three parts), untranscoded, on a page recording its parts."""
    data = hashlib.shake_256(b"videoforge").digest(mib * MiB)
    clip = tmp_path / "holiday.mp4"
    clip.write_bytes(data)
    page = await site.page(ALICE)
    parts = PartsSent()
    parts.watch(page)
    await page.goto(site.url + "/upload")
    form = page.locator("#upload-form")
    assert await form.get_attribute("data-multipart-threshold") == str(5 * MiB)
    await fill_form(page, str(clip), "Holiday", renditions=())
    return page, parts, data


async def assert_stored_whole(site: Site, page: Page, parts: PartsSent, data: bytes) -> None:
    """The page confirmed the upload and storage holds exactly the file's bytes."""
    watch = page.get_by_role("link", name="Watch")
    await watch.wait_for()
    status = page.get_by_role("status")
    assert await status.inner_text() == "Uploaded: the original is published as it is."
    megabytes = f"{len(data) / 1e6:.1f} MB"
    progress = await page.locator("#upload-progress-text").inner_text()
    assert progress == f"{megabytes} of {megabytes} (100%)"
    assert not await page.locator("#upload-controls").is_visible()
    key, _ = parts.upload
    assert key.startswith(f"gallery/{ALICE}/") and key.endswith(".mp4")
    stored = await site.gallery.storage.read_bytes(key, max_bytes=len(data) + 1)
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()
    href = await watch.get_attribute("href")
    assert href is not None
    video = await expect(await site.gallery.details(href.rsplit("/", 1)[1], ALICE), 200)
    assert (video["title"], video["status"]) == ("Holiday", "uploaded")


async def stored_part_numbers(site: Site, parts: PartsSent) -> list[int]:
    key, upload_id = parts.upload
    return [part.number for part in await site.gallery.storage.list_parts(key, upload_id)]


async def test_large_upload_sends_several_parts_at_once(parts_site: Site, tmp_path: Path) -> None:
    site = parts_site
    page, parts, data = await start_large_upload(site, tmp_path, mib=21)  # five parts
    beside: list[int] = []  # the parts sent while part one was held

    async def hold_part_one_until_another_goes(route: Route) -> None:
        # One part at a time would send no other part while the first is unanswered.
        with contextlib.suppress(TimeoutError):
            await parts.wait_for(lambda: len(parts.sent) > 1)
        beside.extend(number for number in parts.sent if number != 1)
        await route.fallback()

    await page.route(lambda url: "partNumber=1" in url, hold_part_one_until_another_goes)
    await page.get_by_role("button", name="Upload").click()

    await assert_stored_whole(site, page, parts, data)
    assert beside, "no other part went up while part one was on its way"
    assert parts.sent == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    # At least two at once. The page asks Uppy for 4 requests in flight, but Uppy counts its
    # own requests, not the PUTs the server sees (a fifth was seen in one run), so no upper bound.
    assert parts.most_in_flight >= 2, parts.most_in_flight
    site.assert_no_console_errors()


async def test_large_upload_sends_a_failed_part_again_by_itself(
    parts_site: Site, tmp_path: Path
) -> None:
    site = parts_site
    page, parts, data = await start_large_upload(site, tmp_path)
    failed = asyncio.Event()

    async def fail_part_two_once(route: Route) -> None:
        if part_number(route.request) != 2 or failed.is_set():
            await route.fallback()
            return
        failed.set()
        await route.fulfill(status=500, body="storage hiccup")

    await page.route(lambda url: "partNumber=2" in url, fail_part_two_once)
    await page.get_by_role("button", name="Upload").click()

    await assert_stored_whole(site, page, parts, data)
    assert parts.sent == {1: 1, 2: 2, 3: 1}
    assert not await page.get_by_role("button", name="Retry").is_visible()
    # The only console error: Chromium's own, for the part storage refused.
    assert site.errors == [SERVER_ERROR], site.errors


async def test_large_upload_goes_in_parts_and_resumes_after_the_connection_drops(
    parts_site: Site, tmp_path: Path
) -> None:
    site = parts_site
    page, parts, data = await start_large_upload(site, tmp_path)
    held = PartHeld(2, error="internetdisconnected")
    await held.hold(page)

    await page.get_by_role("button", name="Upload").click()
    await held.arrived.wait()
    await parts.wait_for(lambda: parts.answered == {1, 3})  # the parts beside it land
    # The network goes while part two is on its way: Uppy waits for it to come back.
    await page.context.set_offline(True)
    held.release.set()

    await page.get_by_role("status").get_by_text("The connection was lost").wait_for()
    assert await page.get_by_role("button", name="Pause").is_visible()
    assert not await page.get_by_role("button", name="Retry").is_visible()
    assert await stored_part_numbers(site, parts) == [1, 3]
    assert await axe_violations(page) == []
    await site.screenshot(page, "upload-parts-offline")

    await page.context.set_offline(False)  # Uppy sends the rest
    await assert_stored_whole(site, page, parts, data)
    assert parts.sent == {1: 1, 2: 2, 3: 1}  # the stored parts are never sent again
    assert await axe_violations(page) == []
    # The only console errors: Chromium's own, for the requests refused while offline.
    assert site.errors and set(site.errors) == {OFFLINE_ERROR}, site.errors


async def test_large_upload_paused_mid_part_resumes_from_the_stored_parts(
    parts_site: Site, tmp_path: Path
) -> None:
    site = parts_site
    page, parts, data = await start_large_upload(site, tmp_path)
    held = PartHeld(2)
    await held.hold(page)

    await page.get_by_role("button", name="Upload").click()
    await held.arrived.wait()
    await parts.wait_for(lambda: parts.answered == {1, 3})
    await page.get_by_role("button", name="Pause").click()
    status = page.get_by_role("status")
    assert await status.inner_text() == "Paused: the parts sent so far are kept."
    held.release.set()
    assert await stored_part_numbers(site, parts) == [1, 3]

    await page.get_by_role("button", name="Resume").click()  # Uppy lists them, sends part two
    await assert_stored_whole(site, page, parts, data)
    assert parts.sent == {1: 1, 2: 2, 3: 1}
    site.assert_no_console_errors()


async def test_large_upload_cancelled_deletes_its_parts_and_re_enables_the_form(
    parts_site: Site, tmp_path: Path
) -> None:
    site = parts_site
    page, parts, _ = await start_large_upload(site, tmp_path)
    held = PartHeld(2)
    await held.hold(page)

    await page.get_by_role("button", name="Upload").click()
    await held.arrived.wait()
    async with page.expect_response(lambda r: r.request.method == "DELETE") as aborted:
        await page.get_by_role("button", name="Cancel").click()
    assert (await aborted.value).status == 204
    held.release.set()

    status = page.get_by_role("status")
    assert await status.inner_text() == "The upload was cancelled."
    assert await status.get_attribute("data-kind") == "info"
    assert await page.get_by_role("button", name="Upload").is_enabled()
    assert not await page.locator("#upload-controls").is_visible()
    with pytest.raises(UploadNotFound):
        await stored_part_numbers(site, parts)
    assert (await site.gallery.listing(ALICE, mine="true"))["videos"] == []
    site.assert_no_console_errors()
