"""The watch page `/videos/{id}` and the upload page `/upload`.

Both render on the server; their scripts (`watch.js`, `upload.js`) call the JSON API for what
changes after load: the signed stream URLs, the upload itself and the job's progress.
"""

from __future__ import annotations

from aiohttp import web

from videoforge import keys
from videoforge.errors import Forbidden, NotFound
from videoforge.gallery.service import VideoNotFound
from videoforge.storage.base import MAX_PUT_BYTES
from videoforge.transcode.ladder import QUALITY_NAMES
from videoforge.web.bodies import path_id
from videoforge.web.pages.render import (
    STATIC_DIR,
    page_viewer,
    render,
    render_error,
    require_page_user,
)

HLS_SCRIPT = STATIC_DIR / "vendor" / "hls.min.js"
PLYR_SCRIPT = STATIC_DIR / "vendor" / "plyr.min.js"
UPPY_SCRIPT = STATIC_DIR / "vendor" / "uppy.min.mjs"
VISIBILITY_CHOICES = (
    ("public", "Public: listed in the gallery"),
    ("unlisted", "Unlisted: anyone with the link"),
    ("private", "Private: only you"),
)

routes = web.RouteTableDef()


@routes.get("/videos/{id}", name="watch")
async def watch_page(request: web.Request) -> web.Response:
    """A video's player and details; counts one view, like the API's details."""
    viewer = await page_viewer(request)
    gallery = request.app[keys.GALLERY]
    try:
        video_id = path_id(request, "id", VideoNotFound)
        video = await gallery.details(viewer, video_id)
    except (NotFound, Forbidden) as exc:
        return await render_error(request, exc.status, exc.message)
    state = player_state(video["status"], video["jobId"])
    growing = state == "processing" and await gallery.playable_while_processing(video)
    return await render(
        request,
        "watch.html",
        {
            "video": video,
            # A long video transcoded in chunks plays what is ready while the rest encodes.
            "player_state": "play" if growing else state,
            "still_processing": growing,
            # Checked per request: `make` vendors hls.js, and the page must not load a 404.
            "has_hls_script": HLS_SCRIPT.is_file(),
            "has_plyr": PLYR_SCRIPT.is_file(),
        },
    )


def player_state(status: str, job_id: int | None) -> str:
    """`play`, `processing` or `failed`: what the page shows in place of the player.

    An upload confirmed without transcoding stays `uploaded` with no job, and the stream
    endpoint hands out the original: that plays as it is.
    """
    if status == "ready" or (status == "uploaded" and job_id is None):
        return "play"
    return "failed" if status == "failed" else "processing"


@routes.get("/upload", name="upload")
async def upload_page(request: web.Request) -> web.Response:
    """The upload form (signed in only); the script does the upload and follows the job."""
    await require_page_user(request)
    return await render(
        request,
        "upload.html",
        {"visibilities": VISIBILITY_CHOICES, "renditions": QUALITY_NAMES, **upload_limits(request)},
    )


def upload_limits(request: web.Request) -> dict[str, int | bool]:
    """The largest upload the page takes, the size above which it sends a file in parts, and
    whether it can send any: through Uppy, which `make` vendors (checked per request, as hls.js).
    """
    storage = request.app[keys.CONFIG].storage
    return {
        "max_upload": storage.max_upload_bytes,
        "multipart_threshold": min(storage.multipart_threshold, MAX_PUT_BYTES),
        "has_uppy": UPPY_SCRIPT.is_file(),
    }
