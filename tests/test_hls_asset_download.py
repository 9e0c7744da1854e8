"""The download link of a job's HLS asset plays: master, variant and segments all answer 200."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from yarl import URL

from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ALICE,
    Gallery,
    StartGallery,
    expect,
    signed,
)
from tests.jobs_support import (
    create_job,
    wait_for_job,
)
from tests.media import Media


async def fetch(http: aiohttp.ClientSession, url: URL) -> tuple[int, bytes]:
    async with http.get(url) as response:
        return response.status, await response.read()


def media_lines(playlist: str) -> list[str]:
    """A playlist's URI lines: variant playlists in a master, segments in a media playlist."""
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def init_uri(playlist: str) -> str | None:
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            return line.split('URI="', 1)[1].split('"', 1)[0]
    return None


async def hls_download_location(gallery: Gallery, job_id: int) -> URL:
    """Where the download route of the job's HLS asset redirects (302)."""
    body = await expect(await gallery.request("GET", f"/api/jobs/{job_id}/assets", ALICE), 200)
    (hls,) = [asset for asset in body["assets"] if asset["assetType"] == "hls"]
    path = f"/api/jobs/{job_id}/assets/{hls['id']}/download"
    response = await gallery.request("GET", path, ALICE, allow_redirects=False)
    assert response.status == 302, await response.text()
    return signed(response.headers["Location"])


async def test_hls_asset_download_redirects_to_a_playable_signed_ladder_on_each_backend(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    storage_settings: dict[str, Any],
    media: Media,
) -> None:
    gallery = await start_gallery(
        make_config(storage=storage_settings, queue={"poll_interval": 0.2})
    )
    # An upload never confirmed: the job belongs to no gallery video, only to its owner.
    data = await asyncio.to_thread(media.landscape().read_bytes)
    key = await gallery.uploaded_key(ALICE, data, filename="clip.mp4")
    job = await create_job(gallery, ALICE, key, outputFormats=["medium", "low"])
    assert job["galleryVideoId"] is None
    await wait_for_job(gallery, ALICE, job["id"])

    master_url = await hls_download_location(gallery, job["id"])
    async with aiohttp.ClientSession() as http:  # a player: no token, only the link
        status, master = await fetch(http, master_url)
        assert status == 200, master
        variants = media_lines(master.decode())
        assert len(variants) == 2, master

        variant_url = master_url.join(URL(variants[0]))
        status, variant = await fetch(http, variant_url)
        assert status == 200, (variant_url, variant)
        segments = media_lines(variant.decode())
        assert segments, variant

        status, segment = await fetch(http, signed(segments[0]))
        assert status == 200 and segment, segments[0]
        init = init_uri(variant.decode())
        if init is not None:
            status, _ = await fetch(http, signed(init))
            assert status == 200, init
