"""The watch page `/videos/{id}` in headless Chromium: the HLS ladder played through hls.js under
Plyr's controls (its quality menu), the native-HLS and MP4 fallbacks, the API's refusals as
pages, escaping and accessibility.

Chromium runs hls.js and has native HLS, so it never falls back to MP4 by itself: that path is
reached with `?player=mp4`, a flag watch.js documents. Native HLS is what it does when the page
has no vendored hls.js to load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Locator, Page

from tests.browser_support import (
    PHONE,
    Site,
    axe_violations,
)
from tests.gallery_support import (
    ALICE,
    BOB,
)
from tests.jobs_support import upload_clip, wait_for_job
from tests.media import Media
from tests.worker_support import poll_until_async
from videoforge import keys
from videoforge.db import videos as videos_db
from videoforge.web.pages import watch

LADDER = ["medium", "low"]  # two rungs: the fewest that show a switch
FRENCH_LABEL = "Français"  # beyond ASCII, from the API to Plyr's menu intact
ENGLISH = {
    "language": "en",
    "label": "English",
    "content": "WEBVTT\n\n00:00.000 --> 00:03.000\nHello captions\n",
}

# hls.js hands over a rendition's cues again as when it parses them again (a rendition chosen
# anew, an instance replaced): the English track's cue count before and after.
PARSE_ENGLISH_AGAIN = """() => {
  const { hls } = window.videoforgePlayer;
  const track = [...document.querySelector("video").textTracks].find((t) => t.language === "en");
  const before = track.cues.length;
  const cues = [...track.cues].map((c) => new VTTCue(c.startTime, c.endTime, c.text));
  const subtitleTrack = hls.subtitleTracks.find((t) => t.lang === "en");
  hls.trigger(window.Hls.Events.CUES_PARSED, { type: "subtitles", cues, subtitleTrack });
  return [before, track.cues.length];
}"""


async def transcoded_video(site: Site, media: Media, **confirm: Any) -> dict[str, Any]:
    """The 3 s 720p clip uploaded by Alice and transcoded into the two-rung ladder."""
    video = await upload_clip(site.gallery, ALICE, media.landscape(), transcode=LADDER, **confirm)
    await wait_for_job(site.gallery, ALICE, video["jobId"])
    return video


async def play_past(page: Page, seconds: float) -> None:
    """Start playback (muted, as a page may autoplay) and wait until it passes `seconds`."""
    await page.locator("video").evaluate("v => { v.muted = true; v.play(); }")
    await page.wait_for_function(
        "s => document.querySelector('video').currentTime > s", arg=seconds, timeout=20_000
    )


async def open_quality_menu(page: Page) -> list[str]:
    """Open Plyr's settings, then its quality panel; the choices it lists, top to bottom."""
    await page.get_by_role("button", name="Settings").click()
    await page.get_by_role("menuitem", name=re.compile("^Quality")).click()
    choices = page.locator("[data-plyr=quality]")
    await choices.first.wait_for()
    return [text.split("\n")[0] for text in await choices.all_inner_texts()]


async def add_captions(site: Site, video_id: int, track: dict[str, str]) -> None:
    """Alice adds a caption track to her video."""
    path = f"/api/gallery/videos/{video_id}/captions"
    response = await site.gallery.request("POST", path, ALICE, json=track)
    assert response.status == 201, await response.text()


async def add_english_captions(site: Site, video_id: int) -> None:
    """Alice adds an English track whose one cue lasts the whole clip."""
    await add_captions(site, video_id, ENGLISH)


async def caption_choices(page: Page) -> list[str]:
    """Open Plyr's settings, then its captions panel; the choices it lists, then close it."""
    await page.get_by_role("button", name="Settings").click()
    await page.get_by_role("menuitem", name=re.compile("^Captions")).click()
    choices = page.locator("[data-plyr=language]")
    await choices.first.wait_for()
    texts = [text.split("\n")[0] for text in await choices.all_inner_texts()]  # less the badge
    await page.locator(".plyr__control--back:visible").click()  # back to the menu's first page
    await page.get_by_role("button", name="Settings").click()
    return texts


async def hover_seek_bar(page: Page, fraction: float) -> Locator:
    """Rest the mouse on the seek bar at `fraction` of its length; Plyr's preview thumbnail."""
    thumb = page.locator(".plyr__preview-thumb")
    await thumb.wait_for(state="attached")  # drawn once Plyr has read the storyboard
    box = await page.locator(".plyr__progress input[type=range]").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + box["width"] * fraction - 5, y)
    await page.mouse.move(box["x"] + box["width"] * fraction, y, steps=3)
    await page.locator(".plyr__preview-thumb--is-shown").wait_for()
    # Faded in fully, for the screenshots.
    await thumb.evaluate("t => Promise.all(t.getAnimations().map(a => a.finished))")
    return thumb


async def test_watch_page_plays_the_ladder_with_storyboard_thumbnails_captions_and_quality_menu(
    site: Site, media: Media
) -> None:
    video = await transcoded_video(
        site, media, title="Colour bars at 720p", description="A test pattern\nand a 440 Hz tone."
    )
    await add_english_captions(site, video["id"])
    await add_captions(site, video["id"], {**ENGLISH, "language": "fr", "label": FRENCH_LABEL})
    page = await site.page(BOB)

    await page.goto(f"{site.url}/videos/{video['id']}")
    await page.wait_for_function("() => window.videoforgePlayer.hls?.levels.length === 2")
    await page.get_by_role("button", name="Enable captions").click()
    await play_past(page, 1.0)
    # The cue, from the master playlist's subtitles rendition, over the video at its time.
    await page.locator(".plyr__captions").get_by_text("Hello captions").wait_for()

    player = await page.evaluate(
        "() => { const p = window.videoforgePlayer;"
        " return {mode: p.mode, level: p.hls.currentLevel, subtitles: p.hls.subtitleTrack,"
        " heights: p.hls.levels.map(l => l.height), language: p.plyr.language}; }"
    )
    assert player["mode"] == "hls.js" and player["language"] == "en"
    assert player["level"] >= 0 and sorted(player["heights"]) == [480, 720]
    assert player["subtitles"] >= 0
    await page.evaluate("document.querySelector('video').pause()")
    assert await caption_choices(page) == ["Disabled", "English", FRENCH_LABEL]
    for name in ("Enter fullscreen", "PIP"):
        assert await page.get_by_role("button", name=name, exact=True).is_visible(), name

    thumb = await hover_seek_bar(page, 0.25)  # left of the caption, not over it
    image = thumb.locator(".plyr__preview-thumb__image-container img")
    await page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=await image.element_handle()
    )
    assert "/storyboard-000.jpg" in (await image.get_attribute("src") or "")
    await site.screenshot(page, "watch")  # docs/screenshots/watch.png
    await page.mouse.down()  # scrubbing: the storyboard frame fills the video
    await page.locator(".plyr__preview-scrubbing--is-shown img").wait_for()
    await page.mouse.up()

    # Keyboard: "c" turns the captions off, and hls.js stops loading them; again, back on.
    await page.get_by_role("button", name="Play", exact=True).first.focus()
    for active, loaded in ((False, "=== -1"), (True, ">= 0")):
        await page.keyboard.press("c")
        await page.wait_for_function(
            f"a => {{ const p = window.videoforgePlayer; return p.plyr.captions.active === a"
            f" && p.hls.subtitleTrack {loaded}; }}",
            arg=active,
        )
    assert await page.evaluate(PARSE_ENGLISH_AGAIN) == [1, 1]  # a cue parsed again is kept once

    assert await open_quality_menu(page) == ["Auto", "720p", "480p"]
    await page.locator("[data-plyr=quality]", has_text="480p").click()
    low = player["heights"].index(480)
    await page.wait_for_function("n => window.videoforgePlayer.hls.currentLevel === n", arg=low)
    await page.locator("#player-level").get_by_text("Playing 480p").wait_for()
    assert not await page.evaluate("window.videoforgePlayer.hls.autoLevelEnabled")
    await site.screenshot(page, "watch-quality-menu")

    assert await page.get_by_role("heading", level=1).inner_text() == "Colour bars at 720p"
    meta = await page.locator(".watch-meta").inner_text()
    assert "1 view" in meta and "by alice" in meta and "0:03" in meta
    assert (
        await page.locator(".watch-description").inner_text()
        == "A test pattern\nand a 440 Hz tone."
    )
    assert await axe_violations(page) == []
    site.assert_no_console_errors()
    site.assert_no_foreign_requests()  # Plyr's icons and blank video come from the app


async def test_watch_page_falls_back_to_mp4_renditions_with_captions_keeping_position_and_speed(
    site: Site, media: Media
) -> None:
    video = await transcoded_video(site, media)
    await add_english_captions(site, video["id"])
    page = await site.page(viewport=PHONE)

    await page.goto(f"{site.url}/videos/{video['id']}?player=mp4")
    await page.wait_for_function("() => window.videoforgePlayer.mode !== null")
    assert await page.evaluate("window.videoforgePlayer.hls") is None
    # An MP4 has no subtitles of its own: the page adds the stream answer's tracks.
    track = page.locator("video track")
    assert [await track.get_attribute(a) for a in ("kind", "srclang", "label")] == [
        "captions",
        "en",
        "English",
    ]
    await page.get_by_role("button", name="Enable captions").click()
    await play_past(page, 1.0)
    await page.locator(".plyr__captions").get_by_text("Hello captions").wait_for()
    assert "medium.mp4" in await page.evaluate("document.querySelector('video').currentSrc")
    await page.evaluate("document.querySelector('video').pause()")
    position = await page.evaluate("document.querySelector('video').currentTime")
    await page.get_by_role("button", name="Settings").click()
    await page.get_by_role("menuitem", name=re.compile("^Speed")).click()
    await page.locator("[data-plyr=speed]", has_text="1.5").click()
    await page.wait_for_function("() => document.querySelector('video').playbackRate === 1.5")
    await page.get_by_role("button", name="Settings").click()  # closes the menu
    assert await open_quality_menu(page) == ["Auto", "Medium", "Low"]
    await page.locator("[data-plyr=quality]", has_text="Low").click()
    await page.wait_for_function(
        "at => { const v = document.querySelector('video');"
        " return v.currentSrc.includes('low.mp4') && v.readyState >= 1"
        " && Math.abs(v.currentTime - at) < 0.1 && v.playbackRate === 1.5; }",
        arg=position,
    )
    assert await page.evaluate("window.videoforgePlayer.mode") == "mp4"
    await page.get_by_role("button", name="Settings").click()  # closes the menu
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    seek_bar = await page.locator(".plyr__progress input[type=range]").bounding_box()
    assert seek_bar is not None and seek_bar["width"] > PHONE["width"] / 2  # a row of its own
    await site.screenshot(page, "watch-phone")
    assert await axe_violations(page) == []
    site.assert_no_console_errors()


async def test_watch_page_of_anothers_private_video_is_403_and_unknown_ids_are_404(
    site: Site,
) -> None:
    private = await site.gallery.upload(ALICE, title="Diary", visibility="private")
    page = await site.page(BOB)

    response = await page.goto(f"{site.url}/videos/{private['id']}")
    assert response is not None and response.status == 403
    assert await page.get_by_role("heading", level=1).inner_text() == "Access denied"
    assert await page.locator("video").count() == 0
    assert "Diary" not in await page.content()
    await site.screenshot(page, "watch-denied")
    for bad_id in ("999999", "abc", "0", "99999999999999999999"):
        response = await page.goto(f"{site.url}/videos/{bad_id}")
        assert response is not None and response.status == 404, bad_id
        assert await page.get_by_role("heading", level=1).inner_text() == "Video not found"

    owner = await site.page(ALICE)
    response = await owner.goto(f"{site.url}/videos/{private['id']}")
    assert response is not None and response.status == 200


async def test_watch_page_escapes_title_and_description(site: Site) -> None:
    video = await site.gallery.upload(
        ALICE,
        title="<img src=x onerror=alert(1)>",
        description="<script>alert(2)</script>\n<b>bold?</b>",
    )
    page = await site.page()

    await page.goto(f"{site.url}/videos/{video['id']}")

    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == "<img src=x onerror=alert(1)>"
    description = page.locator(".watch-description")
    assert await description.inner_text() == "<script>alert(2)</script>\n<b>bold?</b>"
    assert await page.locator("main img, main b, main script").count() == 0
    assert await page.title() == "<img src=x onerror=alert(1)> · videoforge"
    await site.screenshot(page, "watch-escaped")
    site.assert_no_console_errors()


async def test_watch_page_shows_a_message_instead_of_a_player_until_the_video_is_ready(
    site: Site, media: Media
) -> None:
    failed = await upload_clip(site.gallery, ALICE, media.corrupt(), transcode=["low"])
    await wait_for_job(site.gallery, ALICE, failed["jobId"], ("FAILED",))
    pending = await site.gallery.upload(ALICE, title="Soon")
    # Stands in for a job still running: the page reads only the video's status.
    await videos_db.update_video(site.gallery.app[keys.DB], pending["id"], {"status": "processing"})
    await site.gallery.app[keys.GALLERY].invalidate(pending["id"])
    page = await site.page()

    await page.goto(f"{site.url}/videos/{failed['id']}")
    assert await page.locator("video").count() == 0
    assert "Processing failed" in await page.locator(".player-placeholder").inner_text()
    await page.goto(f"{site.url}/videos/{pending['id']}")
    assert await page.locator("video").count() == 0
    assert "still processing" in await page.locator(".player-placeholder").inner_text()
    await site.screenshot(page, "watch-processing")
    assert await axe_violations(page) == []
    site.assert_no_console_errors()


async def test_watch_page_without_vendored_hls_js_plays_the_ladder_natively_with_captions(
    site: Site, media: Media, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(watch, "HLS_SCRIPT", tmp_path / "missing" / "hls.min.js")
    video = await transcoded_video(site, media)
    await add_english_captions(site, video["id"])
    page = await site.page()

    await page.goto(f"{site.url}/videos/{video['id']}")
    await page.wait_for_function("() => window.videoforgePlayer.mode !== null")
    assert await page.locator("script[src*=hls]").count() == 0
    assert await page.evaluate("window.videoforgePlayer.mode") == "native"
    # Chromium's own HLS offers none of the playlist's subtitles: the page adds the tracks.
    await page.get_by_role("button", name="Enable captions").click()
    await play_past(page, 1.0)
    assert "master.m3u8" in await page.evaluate("document.querySelector('video').currentSrc")
    await page.locator(".plyr__captions").get_by_text("Hello captions").wait_for()
    site.assert_no_console_errors()


async def test_watch_page_plays_a_chunked_video_while_it_encodes_and_across_its_seams(
    start_site: Any, media: Media
) -> None:
    site = await start_site(
        transcode={"workers": 1, "chunk_seconds": 8}, queue={"poll_interval": 0.2}
    )
    clip = media.clip("chunked-480p", 854, 480, seconds=22)  # chunks of 8, 8 and 6 s
    video = await upload_clip(site.gallery, ALICE, clip, transcode=["low"])
    stream_path = f"/api/gallery/videos/{video['id']}/stream"

    async def playable() -> bool | None:
        response = await site.gallery.request("GET", stream_path, ALICE)
        return True if (await response.json())["playable"] else None

    await poll_until_async(playable, 60, lambda: "the video never became playable")
    page = await site.page(BOB)
    await page.goto(f"{site.url}/videos/{video['id']}")
    await page.get_by_text("Still processing: playing what is ready so far.").wait_for()
    await page.wait_for_function("() => window.videoforgePlayer.hls?.levels.length === 1")
    await play_past(page, 1.0)

    await wait_for_job(site.gallery, ALICE, video["jobId"])
    for seam in (8.0, 16.0):  # where one chunk's segments meet the next one's
        await page.locator("video").evaluate("(v, at) => { v.currentTime = at; }", seam - 1.0)
        await play_past(page, seam + 1.0)
    site.assert_no_console_errors()
