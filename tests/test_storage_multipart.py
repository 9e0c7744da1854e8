"""Multipart uploads: one contract, run unchanged against the local backend and real S3."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from videoforge.errors import BadRequest, InvalidKey
from videoforge.storage import Storage
from videoforge.storage.multipart import MIN_PART_BYTES, InvalidParts, UploadNotFound

KEY = "gallery/u1/big.mp4"
FIRST = bytes(range(256)) * (MIN_PART_BYTES // 256)  # exactly the smallest part
SECOND = b"second part " * 1000
LAST = b"the last part may be small"


async def put_part(
    storage: Storage, http: aiohttp.ClientSession, upload_id: str, number: int, data: bytes
) -> str:
    """PUT one part to its presigned URL, as a browser would; the ETag it answers."""
    signed = await storage.presign_part(KEY, upload_id, number, 300)
    async with http.put(URL(signed, encoded=True), data=io.BytesIO(data)) as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers["ETag"]


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


async def test_parts_put_out_of_order_complete_into_one_object(
    storage: Storage, http: aiohttp.ClientSession, work: Path
) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    etags = {
        3: await put_part(storage, http, upload_id, 3, LAST),
        1: await put_part(storage, http, upload_id, 1, FIRST),
        2: await put_part(storage, http, upload_id, 2, FIRST + SECOND),
    }

    assert etags == {1: md5_etag(FIRST), 2: md5_etag(FIRST + SECOND), 3: md5_etag(LAST)}
    listed = await storage.list_parts(KEY, upload_id)
    assert [(p.number, p.size, p.etag) for p in listed] == [
        (1, len(FIRST), etags[1]),
        (2, len(FIRST + SECOND), etags[2]),
        (3, len(LAST), etags[3]),
    ]
    info = await storage.complete_multipart(KEY, upload_id, sorted(etags.items()))

    whole = FIRST + FIRST + SECOND + LAST
    assert info.size == len(whole)
    await storage.get_file(KEY, work / "whole.mp4")
    assert (work / "whole.mp4").read_bytes() == whole
    assert [upload async for upload in storage.pending_uploads()] == []
    with pytest.raises(UploadNotFound):
        await storage.list_parts(KEY, upload_id)


async def test_an_interrupted_upload_resumes_from_its_listed_parts(
    storage: Storage, http: aiohttp.ClientSession, work: Path
) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    first = await put_part(storage, http, upload_id, 1, FIRST)

    # A new client knows only the key and upload id: the listing says what is left to send.
    done = {part.number: part.etag for part in await storage.list_parts(KEY, upload_id)}
    assert done == {1: first}
    last = await put_part(storage, http, upload_id, 2, LAST)
    await storage.complete_multipart(KEY, upload_id, [(1, done[1]), (2, last)])

    await storage.get_file(KEY, work / "whole.mp4")
    assert (work / "whole.mp4").read_bytes() == FIRST + LAST


async def test_a_part_put_again_replaces_the_earlier_one(
    storage: Storage, http: aiohttp.ClientSession, work: Path
) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    stale = await put_part(storage, http, upload_id, 1, SECOND)
    # SeaweedFS keeps every PUT of a part number and dates them to the second: only a later
    # second tells the newest apart (S3 itself keeps the last PUT alone).
    await asyncio.sleep(1.1)
    fresh = await put_part(storage, http, upload_id, 1, LAST)

    assert [(p.number, p.etag) for p in await storage.list_parts(KEY, upload_id)] == [(1, fresh)]
    with pytest.raises(InvalidParts):
        await storage.complete_multipart(KEY, upload_id, [(1, stale)])
    await storage.complete_multipart(KEY, upload_id, [(1, fresh)])
    await storage.get_file(KEY, work / "whole.mp4")
    assert (work / "whole.mp4").read_bytes() == LAST


@pytest.mark.parametrize(
    "named",
    [
        pytest.param(lambda e: [(1, e[1]), (2, '"' + "0" * 32 + '"')], id="wrong-etag"),
        pytest.param(lambda e: [(2, e[2]), (1, e[1])], id="out-of-order"),
        pytest.param(lambda e: [(1, e[1]), (1, e[1])], id="repeated"),
        pytest.param(lambda e: [(1, e[1]), (4, e[2])], id="never-uploaded"),
        pytest.param(lambda e: [(2, e[2]), (3, e[3])], id="small-part-not-last"),
        pytest.param(lambda e: [], id="no-parts"),
    ],
)
async def test_a_completion_breaking_a_rule_is_refused_and_the_upload_stays_completable(
    storage: Storage, http: aiohttp.ClientSession, work: Path, named: object
) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    etags = {
        1: await put_part(storage, http, upload_id, 1, FIRST),
        2: await put_part(storage, http, upload_id, 2, LAST),
        3: await put_part(storage, http, upload_id, 3, LAST),
    }
    with pytest.raises(InvalidParts):
        await storage.complete_multipart(KEY, upload_id, named(etags))  # type: ignore[operator]

    assert await storage.head(KEY) is None
    await storage.complete_multipart(KEY, upload_id, [(1, etags[1]), (2, etags[2])])
    await storage.get_file(KEY, work / "whole.mp4")
    assert (work / "whole.mp4").read_bytes() == FIRST + LAST


async def test_etags_are_accepted_with_or_without_quotes(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    etag = await put_part(storage, http, upload_id, 1, LAST)

    info = await storage.complete_multipart(KEY, upload_id, [(1, etag.strip('"'))])
    assert info.size == len(LAST)


async def test_abort_drops_the_parts_and_their_urls_stop_working(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    etag = await put_part(storage, http, upload_id, 1, LAST)
    signed = await storage.presign_part(KEY, upload_id, 2, 300)

    await storage.abort_multipart(KEY, upload_id)

    with pytest.raises(UploadNotFound):
        await storage.list_parts(KEY, upload_id)
    with pytest.raises(UploadNotFound):
        await storage.complete_multipart(KEY, upload_id, [(1, etag)])
    async with http.put(URL(signed, encoded=True), data=LAST) as resp:
        assert resp.status == 404
    assert [upload async for upload in storage.pending_uploads()] == []
    assert await storage.head(KEY) is None


async def test_pending_uploads_name_each_unfinished_upload_and_its_bytes(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    await put_part(storage, http, upload_id, 1, SECOND)
    await put_part(storage, http, upload_id, 2, LAST)

    [pending] = [upload async for upload in storage.pending_uploads()]
    assert (pending.key, pending.upload_id, pending.size) == (KEY, upload_id, len(SECOND + LAST))
    assert pending.started is not None


@pytest.mark.parametrize("upload_id", ["", "../../objects", "no such upload", "a" * 2000])
async def test_an_upload_id_that_names_no_upload_is_not_found(
    storage: Storage, upload_id: str
) -> None:
    with pytest.raises(UploadNotFound):
        await storage.list_parts(KEY, upload_id)
    with pytest.raises(UploadNotFound):
        await storage.abort_multipart(KEY, upload_id)


async def test_an_upload_is_not_an_upload_of_another_key(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    await put_part(storage, http, upload_id, 1, LAST)

    with pytest.raises(UploadNotFound):
        await storage.list_parts("gallery/u2/other.mp4", upload_id)
    assert len(await storage.list_parts(KEY, upload_id)) == 1


@pytest.mark.parametrize("number", [0, 10_001])
async def test_part_numbers_outside_1_to_10000_are_refused(storage: Storage, number: int) -> None:
    upload_id = await storage.create_multipart(KEY, "video/mp4")
    with pytest.raises(BadRequest):
        await storage.presign_part(KEY, upload_id, number, 300)


async def test_a_multipart_upload_to_an_invalid_key_is_refused(storage: Storage) -> None:
    with pytest.raises(InvalidKey):
        await storage.create_multipart("../escape.mp4", "video/mp4")
