"""The admin console `/admin` in headless Chromium against the real app, with a real worker and
real ffmpeg: job statistics and filters, restarting failed jobs, cleaning up, the storage sweep,
who may see it, and `videoforge user promote`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from playwright.async_api import Browser, Page
from playwright.async_api import expect as pw_expect

from tests.browser_support import (
    PHONE,
    Site,
    axe_violations,
)
from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ADMIN,
    ALICE,
    BOB,
    StartGallery,
    expect,
)
from tests.jobs_support import (
    create_job,
    upload_clip,
    wait_for_job,
)
from tests.media import Media
from tests.test_pages_account import (
    PASSWORD,
    other_site,
    register,
    session_user,
    sign_in_with_password,
)
from videoforge import keys

CLI_TIMEOUT = 60


def stat(name: str) -> str:
    """The selector of one figure in the job statistics."""
    return f'#job-stats dt:text-is("{name}") + dd'


async def confirm_in_dialog(page: Page, button: str) -> None:
    dialog = page.get_by_role("dialog")
    await pw_expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name=button).click()
    await pw_expect(dialog).to_be_hidden()


def run_cli(site: Site, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`videoforge ARGS` as a separate process, on the test's database and data dir."""
    config = site.gallery.config
    env = {
        **os.environ,
        "VIDEOFORGE_CONFIG": "",
        "VIDEOFORGE_DATABASE_URL": config.database.url,
        "VIDEOFORGE_SERVER_DATA_DIR": str(config.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "videoforge", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


# --- jobs ---------------------------------------------------------------------------------------


async def test_admin_filters_failed_jobs_and_restarting_reruns_them(
    site: Site, media: Media
) -> None:
    done = await upload_clip(site.gallery, BOB, media.small(), transcode=["low"])
    # Not confirmed, so it may be fixed in place (a confirmed original is sealed).
    corrupt = await asyncio.to_thread(media.corrupt().read_bytes)
    broken = await site.gallery.uploaded_key(ALICE, corrupt, "broken.mp4")
    job = await create_job(site.gallery, ALICE, broken, outputFormats=["low"])
    await wait_for_job(site.gallery, BOB, done["jobId"])
    failed = await wait_for_job(site.gallery, ALICE, job["id"], ("FAILED",))
    # Fixed in place: the restarted job now succeeds, so its status visibly moves on.
    await site.gallery.storage.put_file(broken, media.small(), "video/mp4")
    page = await site.page(ADMIN)

    await page.goto(site.url + "/admin")
    assert await page.locator(stat("Total")).inner_text() == "2"
    assert await page.locator(stat("Failed")).inner_text() == "1"
    assert await page.locator(stat("Completed")).inner_text() == "1"
    assert await page.locator("#job-list tbody tr").count() == 2
    await page.get_by_label("Status").select_option("FAILED")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url(site.url + "/admin?status=FAILED&userId=")
    rows = page.locator("#job-list tbody tr")
    await pw_expect(rows).to_have_count(1)
    assert await rows.get_attribute("data-job-id") == str(failed["id"])
    assert await rows.locator(".tag").inner_text() == "Failed"
    assert await axe_violations(page) == []
    await site.screenshot(page, "admin-failed-filter")

    await page.get_by_role("button", name="Restart failed jobs").click()

    await pw_expect(page.locator("#jobs-status")).to_have_text("1 failed jobs restarted")
    await pw_expect(page.locator(stat("Failed"))).to_have_text("0")  # refreshed in place
    await pw_expect(rows).to_have_count(0)
    await site.screenshot(page, "admin-restarted")
    rerun = await wait_for_job(site.gallery, ALICE, failed["id"])
    assert rerun["attempts"] == 1
    site.assert_no_console_errors()


async def test_admin_filters_by_user_and_cleans_up_after_confirming(site: Site) -> None:
    page = await site.page(ADMIN, viewport=PHONE)
    await page.goto(site.url + "/admin?userId=alice")
    assert await page.get_by_label("User ID").input_value() == "alice"
    await pw_expect(page.locator("#job-list")).to_contain_text("No jobs match these filters.")

    await page.goto(site.url + "/admin?userId=..%2Fetc")
    await pw_expect(page.locator(".admin-page")).to_contain_text("Cannot filter: userId:")

    await page.get_by_label("Delete jobs that ended more than").fill("7")
    await page.get_by_role("button", name="Clean up old jobs").click()
    await confirm_in_dialog(page, "Cancel")
    assert await page.locator("#jobs-status").is_hidden()
    await page.get_by_role("button", name="Clean up old jobs").click()
    await confirm_in_dialog(page, "Delete old jobs")
    await pw_expect(page.locator("#jobs-status")).to_have_text("0 old jobs deleted; 0 bytes freed.")
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    await site.screenshot(page, "admin-phone")
    assert await axe_violations(page) == []
    site.assert_no_console_errors()


async def test_admin_job_list_pages_keep_the_filters(
    start_gallery: StartGallery, make_config: MakeConfig, browser: Browser, tmp_path: Path
) -> None:
    site = await other_site(
        start_gallery,
        make_config,
        browser,
        tmp_path,
        queue={"poll_interval": 0.2},
        pages={"admin_jobs_page_size": 1},
    )
    try:
        key = await site.gallery.uploaded_key(ALICE)
        alices = [(await create_job(site.gallery, ALICE, key))["id"] for _ in range(2)]
        await create_job(site.gallery, BOB, await site.gallery.uploaded_key(BOB))
        page = await site.page(ADMIN)

        await page.goto(site.url + "/admin?userId=alice")
        assert await page.locator("#job-list .result-count").inner_text() == "2 jobs"
        rows = page.locator("#job-list tbody tr")
        assert await rows.get_attribute("data-job-id") == str(alices[1])  # newest first
        await page.get_by_role("link", name="Next").click()
        await page.wait_for_url(site.url + "/admin?userId=alice&page=2")
        assert await rows.get_attribute("data-job-id") == str(alices[0])
        await pw_expect(page.get_by_role("link", name="Previous")).to_be_visible()
        site.assert_no_console_errors()
    finally:
        await site.close()


# --- storage ------------------------------------------------------------------------------------


async def test_admin_sweep_lists_orphans_first_then_deletes_them(site: Site) -> None:
    kept = await site.gallery.upload(ALICE, title="Kept")
    gone = await site.gallery.upload(BOB, title="Gone")
    await expect(await site.gallery.delete(gone["id"], BOB), 200)  # its file stays behind
    page = await site.page(ADMIN)
    await page.goto(site.url + "/admin")
    usage = page.locator("#storage-usage tbody tr")
    await pw_expect(usage).to_have_count(1)
    assert await usage.locator("th").inner_text() == ALICE

    await page.get_by_role("button", name="Find orphaned files").click()

    status = page.locator("#storage-status")
    await pw_expect(status).to_have_text("Found 1 orphaned file, 4.1 kB in all.")
    orphans = page.locator("#orphans tbody tr")
    await pw_expect(orphans).to_have_count(1)
    assert await orphans.locator("td").all_inner_texts() == [
        gone["s3Key"],
        "4.1 kB",
        "deleted video",
    ]
    assert await site.gallery.storage.head(gone["s3Key"]) is not None  # a dry run
    assert await axe_violations(page) == []
    await site.screenshot(page, "admin-sweep-dry-run")

    await page.get_by_role("button", name="Delete 1 orphaned file").click()
    await confirm_in_dialog(page, "Delete files")

    await pw_expect(status).to_have_text("Deleted 1 orphaned file; 4.1 kB freed.")
    assert await page.locator("#orphans").is_hidden()
    assert await page.get_by_role("button", name="Delete 1 orphaned file").is_hidden()
    assert await site.gallery.storage.head(gone["s3Key"]) is None
    assert await site.gallery.storage.head(kept["s3Key"]) is not None
    site.assert_no_console_errors()


async def test_admin_sweep_lists_unfinished_uploads_and_aborts_them(site: Site) -> None:
    body = {"filename": "stalled.mp4", "type": "video/mp4"}
    started = await expect(
        await site.gallery.request("POST", "/api/uploads/s3/multipart", ALICE, json=body), 200
    )
    key, upload_id = started["key"], started["uploadId"]
    part_url = await site.gallery.storage.presign_part(key, upload_id, 1, 60)
    await site.gallery.put_object(part_url, b"p" * 2000, "video/mp4")
    # Started two days ago, as far as the sweep can tell: it dates an upload by its record.
    await site.gallery.app[keys.DB].execute(
        "UPDATE uploads SET created_at = now() - interval '2 days' WHERE multipart_upload_id = $1",
        upload_id,
    )
    page = await site.page(ADMIN)
    await page.goto(site.url + "/admin")

    await page.get_by_role("button", name="Find orphaned files").click()

    status = page.locator("#storage-status")
    await pw_expect(status).to_have_text("Found 1 unfinished upload, 2.0 kB in all.")
    rows = page.locator("#orphans tbody tr")
    await pw_expect(rows).to_have_count(1)
    assert await rows.locator("td").all_inner_texts() == [key, "2.0 kB", "unfinished upload"]

    await page.get_by_role("button", name="Delete 1 unfinished upload").click()
    await confirm_in_dialog(page, "Delete files")

    await pw_expect(status).to_have_text("Deleted 1 unfinished upload; 2.0 kB freed.")
    assert [upload async for upload in site.gallery.storage.pending_uploads()] == []
    site.assert_no_console_errors()


# --- who may see it -----------------------------------------------------------------------------


async def test_admin_page_for_a_signed_in_non_admin_is_a_403_page(site: Site) -> None:
    page = await site.page(ALICE)

    response = await page.goto(site.url + "/admin")

    assert response is not None and response.status == 403
    assert await page.get_by_role("heading", level=1).inner_text() == "Admin access required"
    assert await page.get_by_role("link", name="Admin").count() == 0
    assert await axe_violations(page) == []
    await site.screenshot(page, "admin-403")
    assert [error.split(" (")[0] for error in site.errors] == [
        "Failed to load resource: the server responded with a status of 403"
    ]


async def test_admin_page_for_an_anonymous_visitor_asks_to_sign_in(site: Site) -> None:
    page = await site.page()

    await page.goto(site.url + "/admin")

    await page.wait_for_url(site.url + "/login?next=/admin")
    site.assert_no_console_errors()


async def test_user_promote_makes_a_registered_user_an_admin(site: Site, tmp_path: Path) -> None:
    await register(site, "carol")
    missing = await asyncio.to_thread(run_cli, site, tmp_path, "user", "promote", "nobody")
    assert missing.returncode == 1 and "no local account named 'nobody'" in missing.stderr

    promoted = await asyncio.to_thread(run_cli, site, tmp_path, "user", "promote", "Carol")

    assert promoted.returncode == 0, promoted.stderr
    assert "carol is now an admin" in promoted.stdout
    page = await site.page()
    await page.goto(site.url + "/login?next=/admin")
    await sign_in_with_password(page, "carol", PASSWORD)
    await page.wait_for_url(site.url + "/admin")
    assert await session_user(page, site) == "carol"
    assert await page.get_by_role("heading", level=1).inner_text() == "Admin"
    await pw_expect(page.get_by_role("link", name="Admin")).to_be_visible()
    site.assert_no_console_errors()
