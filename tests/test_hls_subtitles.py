"""Captions and storyboards as players get them: the signed HLS master offers each caption track
as a WebVTT subtitles rendition, at once after a change; the storyboard's index is served with
every sprite signed."""

from __future__ import annotations

import asyncio
import re
import subprocess
from typing import Any
from urllib.parse import urljoin

from tests.gallery_support import ALICE, Gallery, expect, signed
from tests.jobs_support import upload_clip, wait_for_job
from tests.media import Media
from videoforge import keys
from videoforge.db import assets as assets_db
from videoforge.storage.layout import OutputLayout
from videoforge.storage.signed_hls import with_subtitles

SRT = "1\n00:00:00,200 --> 00:00:01,000\nHello\n"
ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^",]*)')
JPEG = b"\xff\xd8\xff\xe0" + bytes(32) + b"\xff\xd9"


def attributes(line: str) -> dict[str, str]:
    """An HLS tag's attribute list (quoted values may hold commas), quotes removed."""
    _, _, listed = line.partition(":")
    return {name: value.strip('"') for name, value in ATTRIBUTE.findall(listed)}


async def get_text(gallery: Gallery, url: str, status: int = 200) -> str:
    async with gallery.http.get(signed(url)) as response:
        text = await response.text()
        assert response.status == status, text
        return text


def subtitle_media(master: str) -> list[dict[str, str]]:
    return [
        attributes(line)
        for line in master.splitlines()
        if line.startswith("#EXT-X-MEDIA:") and attributes(line).get("TYPE") == "SUBTITLES"
    ]


def variants(master: str) -> list[dict[str, str]]:
    return [
        attributes(line) for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")
    ]


async def post_caption(gallery: Gallery, video_id: int, **body: Any) -> dict[str, Any]:
    path = f"/api/gallery/videos/{video_id}/captions"
    track: dict[str, Any] = await expect(await gallery.request("POST", path, ALICE, json=body), 201)
    return track


async def assert_storyboard_signed(gallery: Gallery, url: str) -> None:
    """Every cue of the index names a signed sprite URL (which serves a JPEG) and a fragment."""
    lines = (await get_text(gallery, url)).splitlines()
    cues = [line for line in lines[1:] if line and "-->" not in line]
    assert cues and all(re.fullmatch(r"[^#]+#xywh=\d+,\d+,\d+,\d+", cue) for cue in cues)
    for sprite in {cue.split("#")[0] for cue in cues}:
        status, data = await gallery.get_object(sprite)
        assert status == 200 and data[:2] == b"\xff\xd8", sprite


async def test_a_transcoded_video_has_a_signed_storyboard_and_hls_subtitles_that_follow_changes(
    gallery: Gallery, media: Media
) -> None:
    video = await upload_clip(gallery, ALICE, media.small(), transcode=["low"])
    await wait_for_job(gallery, ALICE, video["jobId"])
    stream = await expect(await gallery.stream(video["id"]), 200)
    master_url = stream["hlsUrl"]
    assert stream["captions"] == [] and subtitle_media(await get_text(gallery, master_url)) == []
    await assert_storyboard_signed(gallery, stream["storyboardUrl"])

    english = await post_caption(gallery, video["id"], language="en", label="English", content=SRT)
    await post_caption(gallery, video["id"], language="en-gb", label="English", content=SRT)
    await post_caption(gallery, video["id"], language="pt-br", label="Português", content=SRT)
    master = await get_text(gallery, master_url)

    offered = subtitle_media(master)
    assert [(m["LANGUAGE"], m["NAME"], m["URI"]) for m in offered] == [
        ("en", "English (en)", "subs/en.m3u8"),  # NAMEs distinct within the group
        ("en-GB", "English (en-GB)", "subs/en-GB.m3u8"),
        ("pt-BR", "Português", "subs/pt-BR.m3u8"),
    ]
    assert all(
        (m["GROUP-ID"], m["DEFAULT"], m["AUTOSELECT"]) == ("subs", "NO", "YES") for m in offered
    )
    assert variants(master) and all(v["SUBTITLES"] == "subs" for v in variants(master))
    assert all("," in v["CODECS"] for v in variants(master))  # the quoted list left whole

    subtitles = await get_text(gallery, urljoin(master_url, "subs/en.m3u8"))
    lines = subtitles.splitlines()
    duration = float(next(x for x in lines if x.startswith("#EXTINF:"))[8:].rstrip(","))
    target = int(next(x for x in lines if x.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
    assert duration == (await expect(await gallery.details(video["id"]), 200))["duration"]
    assert target >= round(duration) and lines[-1] == "#EXT-X-ENDLIST"
    segments = [x for x in lines if x and not x.startswith("#")]
    assert len(segments) == 1
    assert await get_text(gallery, segments[0]) == await get_text(gallery, english["url"])
    assert (await get_text(gallery, segments[0])).startswith("WEBVTT\n\n00:00:00.200 --> ")

    # A player reads the subtitles rendition through the signed URLs, as it reads the video
    # (ffmpeg's HLS reader takes subtitle renditions only when allowed experimental features).
    probe = [str(media.binaries.ffprobe), "-v", "error", "-strict", "experimental"]
    played = await asyncio.to_thread(
        subprocess.run,
        [*probe, "-show_entries", "stream=codec_name", "-of", "csv", master_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert played.returncode == 0 and "webvtt" in played.stdout, played.stderr

    path = f"/api/gallery/videos/{video['id']}/captions/en"
    await expect(await gallery.request("DELETE", path, ALICE), 200)
    master = await get_text(gallery, master_url)
    assert [(m["LANGUAGE"], m["NAME"]) for m in subtitle_media(master)] == [
        ("en-GB", "English"),
        ("pt-BR", "Português"),
    ]
    await get_text(gallery, urljoin(master_url, "subs/en.m3u8"), 404)
    await get_text(gallery, urljoin(master_url, "subs/fr.m3u8"), 404)


# --- storyboards ----------------------------------------------------------------------------


async def put_storyboard(gallery: Gallery, job_id: int, references: list[str]) -> None:
    layout = OutputLayout(job_id)
    cues = [
        f"00:00:0{i}.000 --> 00:00:0{i + 1}.000\n{reference}\n"
        for i, reference in enumerate(references)
    ]
    vtt = "WEBVTT\n\n" + "\n".join(cues)
    await gallery.storage.put_bytes(layout.storyboard, vtt.encode(), "text/vtt")
    await gallery.storage.put_bytes(layout.sprite(0), JPEG, "image/jpeg")
    await gallery.storage.put_bytes(layout.sprite(1), JPEG, "image/jpeg")


async def test_storyboard_index_is_served_with_every_sprite_signed_and_its_fragment_kept(
    gallery: Gallery,
) -> None:
    references = [
        "storyboard-000.jpg#xywh=0,0,160,90",
        "storyboard-000.jpg#xywh=160,0,160,90",
        "storyboard-001.jpg#xywh=0,90,160,90",
    ]
    await put_storyboard(gallery, 7, references)
    url = gallery.app[keys.GALLERY].storyboard_url(7)

    async with gallery.http.get(signed(url)) as response:
        assert response.content_type == "text/vtt" and response.charset == "utf-8"
        served = (await response.text()).splitlines()

    cues = [line for line in served if line and line != "WEBVTT" and "-->" not in line]
    assert [cue.split("#")[1] for cue in cues] == [r.split("#")[1] for r in references]
    assert cues[0].split("#")[0] == cues[1].split("#")[0] != cues[2].split("#")[0]
    for cue in cues:
        assert await gallery.get_object(cue.split("#")[0]) == (200, JPEG)


async def test_storyboard_route_refuses_foreign_tokens_and_references_outside_the_storyboard(
    gallery: Gallery,
) -> None:
    service = gallery.app[keys.GALLERY]
    await put_storyboard(gallery, 8, ["../hls/master.m3u8#xywh=0,0,1,1"])
    await get_text(gallery, service.storyboard_url(8), 404)

    await put_storyboard(gallery, 9, ["storyboard-000.jpg#xywh=0,0,1,1"])
    good = service.storyboard_url(9)
    token = good.split("/")[-2]
    hls_token = service.playlists.master_url(9, 60).split("/")[-2]
    for bad in (hls_token, token.replace("9.", "8.", 1), service.storyboards.issue(9, -10)):
        await get_text(gallery, good.replace(token, bad), 403)
    # And a storyboard token opens no playlist.
    await get_text(gallery, service.playlists.master_url(9, 60).replace(hls_token, token), 403)


async def test_stream_answer_of_a_video_with_a_storyboard_carries_its_signed_url(
    gallery: Gallery,
) -> None:
    video = await gallery.upload(ALICE)
    db = gallery.app[keys.DB]
    job_id = await db.fetchval(
        "INSERT INTO jobs (user_id, input_source, output_format, status) "
        "VALUES ($1, $2, 'low', 'COMPLETED') RETURNING id",
        ALICE,
        video["s3Key"],
    )
    layout = OutputLayout(job_id)
    await put_storyboard(gallery, job_id, ["storyboard-000.jpg#xywh=0,0,160,90"])
    await gallery.storage.put_bytes(layout.rendition("low"), b"mp4", "video/mp4")
    outputs = [
        assets_db.NewAsset("video", "mp4", "low", layout.rendition("low"), 3),
        assets_db.NewAsset("storyboard", "vtt", None, layout.storyboard, None),
        assets_db.NewAsset("sprite", "jpg", None, layout.sprite(0), len(JPEG)),
    ]
    await assets_db.replace_assets(db, job_id, outputs)
    await db.execute(
        "UPDATE gallery_videos SET status = 'ready', job_id = $2 WHERE id = $1", video["id"], job_id
    )
    await gallery.app[keys.GALLERY].invalidate(video["id"])

    stream = await expect(await gallery.stream(video["id"]), 200)

    index = await get_text(gallery, stream["storyboardUrl"])
    sprite = next(line for line in index.splitlines() if "#xywh=" in line).split("#")[0]
    assert await gallery.get_object(sprite) == (200, JPEG)


MASTER = (
    "#EXTM3U\n#EXT-X-VERSION:7\n"
    '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2"\n'
    "low/playlist.m3u8\n"
)


def test_subtitles_renditions_labelled_alike_get_distinct_names_with_their_language() -> None:
    tracks = [("en", "English"), ("en-GB", "English"), ("fr", "Français")]
    media = subtitle_media(with_subtitles(MASTER, tracks))
    assert [(m["LANGUAGE"], m["NAME"]) for m in media] == [
        ("en", "English (en)"),
        ("en-GB", "English (en-GB)"),
        ("fr", "Français"),
    ]
    assert [v["SUBTITLES"] for v in variants(with_subtitles(MASTER, tracks))] == ["subs"]


def test_subtitles_names_stay_distinct_when_a_label_already_reads_as_a_renamed_one() -> None:
    tracks = [("en", "English"), ("en-GB", "English"), ("fr", "English (en)")]
    names = [m["NAME"] for m in subtitle_media(with_subtitles(MASTER, tracks))]
    assert len(set(names)) == len(names) == 3
    assert names[1] == "English (en-GB)"


def test_subtitles_names_hold_no_double_quote_or_line_break() -> None:
    # The API refuses a `"` in a label; what a NAME cannot quote is replaced all the same.
    media = subtitle_media(with_subtitles(MASTER, [("en", 'English "CC"\r\nline')]))
    assert [m["NAME"] for m in media] == ["English 'CC'''line"]
