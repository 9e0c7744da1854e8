"""An upload is the object the user declared and confirmed: its size is bound to the upload URL,
and a write through that URL after confirm changes neither what is served nor what is processed."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ADMIN,
    ALICE,
    DATA,
    Gallery,
    StartGallery,
    expect,
    signed,
)
from tests.jobs_support import (
    create_job,
    upload_clip,
    wait_for_job,
)
from tests.media import Media
from videoforge.app import create_app
from videoforge.auth.tokens import LocalAuthenticator
from videoforge.config import Config
from videoforge.storage import LocalStorage
from videoforge.storage.local import UploadSealed

CHANGED = "The uploaded file changed after it was confirmed"
QUEUE = {"poll_interval": 0.2}


async def put(gallery: Gallery, url: str, data: bytes) -> tuple[int, str]:
    """PUT `data` to an upload URL as a browser would: (status, body)."""
    headers = {"Content-Type": "video/mp4"}
    async with gallery.http.put(signed(url), data=io.BytesIO(data), headers=headers) as response:
        return response.status, await response.text()


async def ticket(gallery: Gallery, file_size: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"filename": "clip.mp4", "contentType": "video/mp4"}
    if file_size is not None:
        body["fileSize"] = file_size
    found: dict[str, Any] = await expect(await gallery.generate_url(ALICE, body), 200)
    return found


async def confirm(gallery: Gallery, key: str) -> aiohttp.ClientResponse:
    return await gallery.confirm(ALICE, {"s3Key": key, "title": "clip"})


# --- the declared size --------------------------------------------------------------------------


async def test_put_of_other_size_than_declared_is_refused_and_leaves_nothing_to_confirm(
    start_gallery: StartGallery, make_config: MakeConfig, storage_settings: dict[str, Any]
) -> None:
    gallery = await start_gallery(make_config(storage=storage_settings))
    upload = await ticket(gallery, file_size=1000)

    for size in (50_000, 999):
        status, body = await put(gallery, upload["uploadUrl"], b"x" * size)
        assert status == 403, (size, status, body)
    assert await gallery.storage.head(upload["s3Key"]) is None
    await assert_error(await confirm(gallery, upload["s3Key"]), 404, "Uploaded file not found")

    status, body = await put(gallery, upload["uploadUrl"], b"x" * 1000)
    assert status in (200, 201), body
    record = await expect(await confirm(gallery, upload["s3Key"]), 201)
    assert record["fileSize"] == 1000


async def test_confirm_of_object_whose_size_differs_from_the_declared_one_is_refused(
    start_gallery: StartGallery, make_config: MakeConfig, storage_settings: dict[str, Any]
) -> None:
    gallery = await start_gallery(make_config(storage=storage_settings))
    upload = await ticket(gallery, file_size=1000)
    # What a store that does not enforce the signed length would hold.
    await gallery.storage.put_bytes(upload["s3Key"], b"x" * 50_000, "video/mp4")

    error = await expect(await confirm(gallery, upload["s3Key"]), 409)
    assert error["error"] == "Uploaded file is 50000 bytes, not the 1000 declared"
    assert await gallery.storage.head(upload["s3Key"]) is None
    assert (await gallery.listing(ALICE, mine="true"))["videos"] == []


# --- after confirm ------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [None, len(DATA)], ids=["undeclared", "declared"])
async def test_put_through_upload_url_after_confirm_is_refused_locally_and_file_unchanged(
    gallery: Gallery, declared: int | None
) -> None:
    upload = await ticket(gallery, file_size=declared)
    await gallery.put_object(upload["uploadUrl"], DATA, "video/mp4")
    video = await expect(await confirm(gallery, upload["s3Key"]), 201)

    swap = b"swapped!" if declared is None else bytes(reversed(DATA))
    async with gallery.http.put(
        signed(upload["uploadUrl"]), data=io.BytesIO(swap), headers={"Content-Type": "video/mp4"}
    ) as response:
        assert response.status == 409
        assert (await response.json())["error"] == "Upload already confirmed"

    stream = await expect(await gallery.stream(video["id"], ALICE), 200)
    assert await gallery.get_object(stream["streamUrl"]) == (200, DATA)


async def test_local_upload_still_streaming_when_confirmed_does_not_replace_the_object(
    gallery: Gallery,
) -> None:
    upload = await ticket(gallery)
    await gallery.put_object(upload["uploadUrl"], DATA, "video/mp4")
    storage = gallery.storage
    assert isinstance(storage, LocalStorage)
    streaming, release = asyncio.Event(), asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        streaming.set()  # the upload got past its first check
        yield b"swapped!"
        await release.wait()

    late = asyncio.create_task(storage.receive(upload["s3Key"], body()))
    await streaming.wait()
    await expect(await confirm(gallery, upload["s3Key"]), 201)
    release.set()
    with pytest.raises(UploadSealed):
        await late
    assert (await storage.read_bytes(upload["s3Key"])) == DATA


@pytest.fixture(name="gallery")
async def local_gallery(start_gallery: StartGallery) -> Gallery:
    return await start_gallery()


# --- S3, where an upload URL cannot be revoked --------------------------------------------------


@pytest.fixture
async def start_api(
    make_config: MakeConfig, aiohttp_server: Any, aiohttp_client: Any
) -> AsyncIterator[Any]:
    """Serve the API alone (no worker), so a job stays PENDING until `start_worker`."""
    async with aiohttp.ClientSession() as http:

        async def start(config: Config) -> Gallery:
            server = await aiohttp_server(create_app(config, "api"), port=config.server.port)
            client = await aiohttp_client(server)
            return Gallery(client, http, config, LocalAuthenticator(config))

        yield start


async def confirmed_clip(gallery: Gallery, media: Media) -> tuple[dict[str, Any], bytes]:
    """A real clip uploaded (no size declared) and confirmed: its upload ticket and bytes."""
    clip = await asyncio.to_thread(media.landscape().read_bytes)
    upload = await ticket(gallery)
    await gallery.put_object(upload["uploadUrl"], clip, "video/mp4")
    await expect(await confirm(gallery, upload["s3Key"]), 201)
    return upload, clip


async def swap(gallery: Gallery, upload: dict[str, Any]) -> None:
    """Replace a confirmed original by 8 bytes through its own upload URL (S3 accepts it)."""
    status, body = await put(gallery, upload["uploadUrl"], b"swapped!")
    assert status == 200, body
    swapped = await gallery.storage.head(upload["s3Key"])
    assert swapped is not None and swapped.size == 8


async def swapped_upload(gallery: Gallery, media: Media) -> str:
    upload, _ = await confirmed_clip(gallery, media)
    await swap(gallery, upload)
    key: str = upload["s3Key"]
    return key


async def test_job_on_s3_object_swapped_after_confirm_fails_and_usage_keeps_confirmed_size(
    start_api: Any,
    aiohttp_server: Any,
    make_config: MakeConfig,
    s3_storage_settings: dict[str, Any],
    media: Media,
) -> None:
    config = make_config(storage=s3_storage_settings, queue=QUEUE)
    gallery: Gallery = await start_api(config)
    upload, clip = await confirmed_clip(gallery, media)
    job = await create_job(gallery, ALICE, upload["s3Key"])

    await swap(gallery, upload)  # between the job's creation and its download
    worker: TestServer = await aiohttp_server(create_app(config, "worker"))
    failed = await wait_for_job(gallery, ALICE, job["id"], statuses=("FAILED",))
    assert failed["errorText"] == f"Failed to download source video: {CHANGED}"
    assert failed["attempts"] == 1  # not retried: another try cannot help
    await worker.close()

    usage = await expect(await gallery.request("GET", "/api/admin/storage/usage", ADMIN), 200)
    (alice,) = [row for row in usage["users"] if row["userId"] == ALICE]
    assert alice["originalBytes"] == len(clip)


async def test_job_on_s3_object_swapped_after_confirm_is_refused_at_creation(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    s3_storage_settings: dict[str, Any],
    media: Media,
) -> None:
    gallery = await start_gallery(make_config(storage=s3_storage_settings, queue=QUEUE))
    key = await swapped_upload(gallery, media)

    response = await gallery.request("POST", "/api/jobs", ALICE, json={"inputSource": key})
    assert (await expect(response, 409))["error"] == CHANGED


async def test_job_on_confirmed_key_as_input_source_completes_on_each_backend(
    start_gallery: StartGallery,
    make_config: MakeConfig,
    storage_settings: dict[str, Any],
    media: Media,
) -> None:
    gallery = await start_gallery(make_config(storage=storage_settings, queue=QUEUE))
    video = await upload_clip(gallery, ALICE, media.small())

    job = await create_job(gallery, ALICE, video["s3Key"], outputFormats=["low"])
    done = await wait_for_job(gallery, ALICE, job["id"])
    assert done["galleryVideoId"] == video["id"]
