"""Camcorder and broadcast files (.ts, .mts, .m2ts) get to the transcoder from every client:
the CLI's content type, the API's schema, storage's type table and the upload page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.browser_support import (
    Site,
)
from tests.gallery_support import (
    ALICE,
    expect,
)
from tests.jobs_support import JOB_TIMEOUT
from tests.media import Media
from videoforge.client.commands import _video_type
from videoforge.storage import content_type_for
from videoforge.web.schemas import GenerateUploadUrlSchema

# AVCHD camcorders write upper-case names (`00001.MTS`); TV recorders and screen recorders `.ts`.
NAMES = ["rec.ts", "00001.MTS", "clip.mts", "00002.M2TS", "clip.m2ts"]


@pytest.mark.parametrize("name", NAMES)
def test_cli_content_type_of_a_transport_stream_name_is_mp2t(name: str) -> None:
    # Python's own table says Qt Linguist for .ts, a 3D model for .mts, nothing for .m2ts.
    assert _video_type(Path(name)) == "video/mp2t"


@pytest.mark.parametrize("name", ["a.ts", "a.mts", "a.m2ts"])
def test_content_type_for_a_transport_stream_key_is_mp2t(name: str) -> None:
    assert content_type_for(f"videos/uploads/u/{name}") == "video/mp2t"


@pytest.mark.parametrize("content_type", ["video/mp2t", "video/MP2T", "video/vnd.dlna.mpeg-tts"])
def test_generate_url_schema_accepts_what_browsers_send_for_transport_streams(
    content_type: str,
) -> None:
    body = GenerateUploadUrlSchema().load({"filename": "a.m2ts", "contentType": content_type})
    assert body["content_type"] == content_type


async def test_upload_page_lets_a_camcorder_file_be_picked(site: Site) -> None:
    page = await site.page(ALICE)
    await page.goto(site.url + "/upload")
    accept = await page.get_by_label("Video file").get_attribute("accept")
    assert accept is not None
    assert {".ts", ".mts", ".m2ts", "video/*"} <= set(accept.split(","))


# What Chromium on Debian says of files picked from disk: `.ts` is Qt Linguist
# (`text/vnd.trolltech.linguist`), `.MTS` has no type at all; both were refused by the API.
@pytest.mark.parametrize("name", ["rec.ts", "00001.MTS"])
async def test_upload_page_of_a_transport_stream_the_browser_mistypes_transcodes_it(
    site: Site, media: Media, tmp_path: Path, name: str
) -> None:
    picked = tmp_path / name
    shutil.copyfile(media.transport_stream(".ts" if name.endswith(".ts") else ".mts"), picked)
    page = await site.page(ALICE)
    await page.goto(site.url + "/upload")
    await page.get_by_label("Video file").set_input_files(str(picked))
    await page.get_by_label("Title", exact=True).fill("Camcorder clip")
    for quality in ("High", "Medium"):
        await page.get_by_label(quality, exact=True).set_checked(False)

    await page.get_by_role("button", name="Upload").click()
    watch = page.get_by_role("link", name="Watch")
    refused = page.locator('#upload-status[data-kind="error"]')
    await watch.or_(refused).wait_for(timeout=JOB_TIMEOUT * 1000)
    assert await refused.count() == 0, await refused.inner_text()

    href = await watch.get_attribute("href")
    assert href is not None
    video = await expect(await site.gallery.details(href.rsplit("/", 1)[1], ALICE), 200)
    assert (video["status"], video["title"]) == ("ready", "Camcorder clip")
    site.assert_no_console_errors()
