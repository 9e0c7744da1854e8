"""Resumable multipart uploads through the HTTP API, as `@uppy/aws-s3` drives them: start, sign
parts (one and batch), PUT them straight to storage, list, complete or abort, then confirm."""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

import aiohttp

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import ALICE, BOB, Gallery, StartGallery, expect, signed
from videoforge.storage.multipart import MIN_PART_BYTES

BASE = "/api/uploads/s3/multipart"
FIRST = bytes(range(256)) * (MIN_PART_BYTES // 256)
LAST = b"and the rest of the video"
GiB = 1024**3


async def start(gallery: Gallery, user: str = ALICE, **body: Any) -> dict[str, str]:
    payload = {"filename": "holiday.mp4", "type": "video/mp4", "metadata": {}, **body}
    started: dict[str, str] = await expect(
        await gallery.request("POST", BASE, user, json=payload), 200
    )
    return started


async def sign(gallery: Gallery, upload: dict[str, str], number: int) -> str:
    path = f"{BASE}/{upload['uploadId']}/{number}"
    answer = await expect(await gallery.request("GET", path, ALICE, params=_key(upload)), 200)
    url: str = answer["url"]
    return url


async def put_part(gallery: Gallery, url: str, data: bytes) -> str:
    """PUT one part straight to storage, as the browser does; the ETag it answers."""
    async with gallery.http.put(signed(url), data=io.BytesIO(data)) as response:
        assert response.status == 200, await response.text()
        return response.headers["ETag"]


async def complete(
    gallery: Gallery, upload: dict[str, str], parts: list[tuple[int, str]], user: str = ALICE
) -> aiohttp.ClientResponse:
    body = {"parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]}
    path = f"{BASE}/{upload['uploadId']}/complete"
    return await gallery.request("POST", path, user, params=_key(upload), json=body)


def _key(upload: dict[str, str]) -> dict[str, str]:
    return {"key": upload["key"]}


async def uploaded_parts(gallery: Gallery, upload: dict[str, str]) -> list[tuple[int, str]]:
    """Both parts of the test file PUT, last one first: their (number, ETag)."""
    last = await put_part(gallery, await sign(gallery, upload, 2), LAST)
    first = await put_part(gallery, await sign(gallery, upload, 1), FIRST)
    return [(1, first), (2, last)]


async def test_a_multipart_upload_is_signed_put_listed_completed_and_confirmed(
    start_gallery: StartGallery, make_config: MakeConfig, storage_settings: dict[str, Any]
) -> None:
    gallery = await start_gallery(make_config(storage=storage_settings))
    upload = await start(gallery, metadata={"name": "holiday.mp4", "size": len(FIRST + LAST)})
    assert re.fullmatch(r"gallery/alice/\d{13}-holiday\.mp4", upload["key"]), upload

    query = {**_key(upload), "partNumbers": "2,1"}
    batch = await expect(
        await gallery.request("GET", f"{BASE}/{upload['uploadId']}/batch", ALICE, params=query),
        200,
    )
    assert set(batch["presignedUrls"]) == {"1", "2"}
    last = await put_part(gallery, batch["presignedUrls"]["2"], LAST)
    first = await put_part(gallery, batch["presignedUrls"]["1"], FIRST)
    assert first == f'"{hashlib.md5(FIRST).hexdigest()}"'

    listed = await expect(
        await gallery.request("GET", f"{BASE}/{upload['uploadId']}", ALICE, params=_key(upload)),
        200,
    )
    assert listed == [
        {"PartNumber": 1, "Size": len(FIRST), "ETag": first},
        {"PartNumber": 2, "Size": len(LAST), "ETag": last},
    ]
    done = await expect(await complete(gallery, upload, [(1, first), (2, last)]), 200)
    assert done["key"] == upload["key"]
    assert await gallery.get_object(done["location"]) == (200, FIRST + LAST)

    body = {"s3Key": upload["key"], "title": "Holiday"}
    record = await expect(await gallery.confirm(ALICE, body), 201)
    assert (record["title"], record["fileSize"]) == ("Holiday", len(FIRST + LAST))


async def test_signing_one_part_answers_a_url_and_its_expiry(gallery: Gallery) -> None:
    upload = await start(gallery)
    path = f"{BASE}/{upload['uploadId']}/7"
    answer = await expect(await gallery.request("GET", path, ALICE, params=_key(upload)), 200)
    assert set(answer) == {"url", "expires"} and isinstance(answer["expires"], int)
    assert "partNumber=7" in answer["url"]


async def test_confirm_refuses_an_unfinished_upload_and_an_aborted_one(gallery: Gallery) -> None:
    upload = await start(gallery)
    await uploaded_parts(gallery, upload)
    body = {"s3Key": upload["key"], "title": "Too soon"}
    await assert_error(
        await gallery.confirm(ALICE, body),
        409,
        "Upload not completed: complete its multipart upload first",
    )

    path = f"{BASE}/{upload['uploadId']}"
    response = await gallery.request("DELETE", path, ALICE, params=_key(upload))
    assert response.status == 204
    await assert_error(await gallery.confirm(ALICE, body), 404, "Uploaded file not found")
    await assert_error(
        await gallery.request("GET", path, ALICE, params=_key(upload)), 404, "Upload not found"
    )


async def test_another_users_upload_or_another_key_is_not_found_and_unchanged(
    gallery: Gallery,
) -> None:
    upload = await start(gallery)
    parts = await uploaded_parts(gallery, upload)
    path = f"{BASE}/{upload['uploadId']}"
    foreign_key = {"key": "gallery/alice/0000000000000-other.mp4"}

    for user, params in ((BOB, _key(upload)), (ALICE, foreign_key)):
        await assert_error(await gallery.request("GET", path, user, params=params), 404)
        await assert_error(await gallery.request("GET", f"{path}/1", user, params=params), 404)
        await assert_error(await gallery.request("DELETE", path, user, params=params), 404)
    await assert_error(await complete(gallery, upload, parts, user=BOB), 404, "Upload not found")

    await expect(await complete(gallery, upload, parts), 200)


async def test_a_wrong_etag_is_refused_and_the_upload_stays_completable(gallery: Gallery) -> None:
    upload = await start(gallery)
    parts = await uploaded_parts(gallery, upload)

    wrong = [(1, parts[0][1]), (2, '"' + "0" * 32 + '"')]
    await assert_error(
        await complete(gallery, upload, wrong), 400, "Part 2 was not uploaded with that ETag"
    )
    await assert_error(
        await complete(gallery, upload, parts[::-1]),
        400,
        "Parts must be listed in ascending order of PartNumber",
    )
    await expect(await complete(gallery, upload, parts), 200)


async def test_completing_again_answers_the_same_as_the_first_time(gallery: Gallery) -> None:
    upload = await start(gallery)
    parts = await uploaded_parts(gallery, upload)
    first = await expect(await complete(gallery, upload, parts), 200)
    again = await expect(await complete(gallery, upload, parts), 200)
    assert again["key"] == first["key"] == upload["key"]


async def test_a_declared_size_over_the_limit_is_refused_before_anything_starts(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start_gallery(make_config(storage={"max_upload_bytes": 1000}))
    payload = {"filename": "big.mp4", "type": "video/mp4"}
    for body in ({**payload, "size": 1001}, {**payload, "metadata": {"size": "1001"}}):
        await assert_error(
            await gallery.request("POST", BASE, ALICE, json=body),
            413,
            "File too large (max 1000 bytes)",
        )
    assert [upload async for upload in gallery.storage.pending_uploads()] == []


async def test_an_assembled_object_over_the_limit_is_refused_and_removed(
    start_gallery: StartGallery, make_config: MakeConfig, s3_storage_settings: dict[str, Any]
) -> None:
    # S3 takes parts of any size up to 5 GiB: only the assembled object can be checked.
    settings = {**s3_storage_settings, "max_upload_bytes": MIN_PART_BYTES}
    gallery = await start_gallery(make_config(storage=settings))
    upload = await start(gallery)
    parts = await uploaded_parts(gallery, upload)

    await assert_error(
        await complete(gallery, upload, parts), 413, f"File too large (max {MIN_PART_BYTES} bytes)"
    )
    assert await gallery.storage.head(upload["key"]) is None
    body = {"s3Key": upload["key"], "title": "Too big"}
    await assert_error(await gallery.confirm(ALICE, body), 404)


async def test_part_numbers_outside_1_to_10000_are_refused(gallery: Gallery) -> None:
    upload = await start(gallery)
    path = f"{BASE}/{upload['uploadId']}"
    for number in ("0", "10001", "00000"):
        await assert_error(
            await gallery.request("GET", f"{path}/{number}", ALICE, params=_key(upload)),
            400,
            "Part number must be between 1 and 10000",
        )
    bad = "Part numbers are 1 to 10000, comma separated"
    for numbers in ("0", "1,,2", "a", "1,10001"):
        query = {**_key(upload), "partNumbers": numbers}
        response = await gallery.request("GET", f"{path}/batch", ALICE, params=query)
        await assert_error(response, 400, bad, details={"partNumbers": [bad]})


async def test_a_part_named_twice_in_a_batch_is_signed_once(gallery: Gallery) -> None:
    upload = await start(gallery)
    query = {**_key(upload), "partNumbers": "3,1,3"}
    path = f"{BASE}/{upload['uploadId']}/batch"
    batch = await expect(await gallery.request("GET", path, ALICE, params=query), 200)
    assert list(batch["presignedUrls"]) == ["3", "1"]


async def test_requests_about_an_upload_need_its_key(gallery: Gallery) -> None:
    upload = await start(gallery)
    response = await gallery.request("GET", f"{BASE}/{upload['uploadId']}", ALICE)
    await assert_error(response, 400, "key is required", details={"key": ["key is required"]})


async def test_multipart_routes_need_a_signed_in_user(gallery: Gallery) -> None:
    body = {"filename": "a.mp4", "type": "video/mp4"}
    await assert_error(await gallery.request("POST", BASE, None, json=body), 401)
    await assert_error(await gallery.request("GET", f"{BASE}/x", None, params={"key": "k"}), 401)


async def test_only_videos_may_be_uploaded(gallery: Gallery) -> None:
    body = {"filename": "notes.txt", "type": "text/plain"}
    message = "Only video uploads are allowed"
    response = await gallery.request("POST", BASE, ALICE, json=body)
    await assert_error(response, 400, message, details={"type": [message]})


async def test_starting_uploads_counts_against_the_upload_url_limit(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start_gallery(make_config(limits={"upload_urls_per_minute": 1}))
    await expect(await gallery.generate_url(ALICE), 200)
    body = {"filename": "a.mp4", "type": "video/mp4"}
    response = await gallery.request("POST", BASE, ALICE, json=body)
    await assert_error(response, 429)
    assert [upload async for upload in gallery.storage.pending_uploads()] == []


async def test_one_put_is_capped_at_5_gib_and_a_multipart_upload_at_the_20_gib_default(
    gallery: Gallery,
) -> None:
    body = {"filename": "big.mp4", "contentType": "video/mp4", "fileSize": 5 * GiB + 1}
    await assert_error(
        await gallery.generate_url(ALICE, body),
        413,
        f"File too large for one PUT (max {5 * GiB} bytes): use a multipart upload",
    )
    upload = await start(gallery, size=20 * GiB)
    assert upload["key"].startswith("gallery/alice/")
    body = {"filename": "huge.mp4", "type": "video/mp4", "size": 20 * GiB + 1}
    response = await gallery.request("POST", BASE, ALICE, json=body)
    await assert_error(response, 413, f"File too large (max {20 * GiB} bytes)")


# --- single uploads, as @uppy/aws-s3 asks for them below its multipart threshold ---------------

PARAMS = "/api/uploads/s3/params"


async def test_upload_params_answer_a_put_the_file_goes_to_and_confirm_takes(
    gallery: Gallery,
) -> None:
    query = {"filename": "small.mp4", "type": "video/mp4", "metadata[size]": str(len(LAST))}
    params = await expect(await gallery.request("GET", PARAMS, ALICE, params=query), 200)
    assert params["method"] == "PUT"
    assert params["headers"] == {"Content-Type": "video/mp4"}
    key = params["fields"]["key"]
    assert re.fullmatch(r"gallery/alice/\d{13}-small\.mp4", key), key

    await gallery.put_object(params["url"], LAST, "video/mp4")
    record = await expect(await gallery.confirm(ALICE, {"s3Key": key, "title": "Small"}), 201)
    assert record["fileSize"] == len(LAST)


async def test_upload_params_are_signed_for_the_declared_size(gallery: Gallery) -> None:
    query = {"filename": "small.mp4", "type": "video/mp4", "metadata[size]": "10"}
    params = await expect(await gallery.request("GET", PARAMS, ALICE, params=query), 200)
    headers = params["headers"]
    async with gallery.http.put(signed(params["url"]), data=LAST, headers=headers) as response:
        await assert_error(response, 403, "Upload size does not match the signed URL")


async def test_upload_params_refuse_a_size_over_one_put(gallery: Gallery) -> None:
    query = {"filename": "big.mp4", "type": "video/mp4", "metadata[size]": str(5 * GiB + 1)}
    response = await gallery.request("GET", PARAMS, ALICE, params=query)
    message = f"File too large for one PUT (max {5 * GiB} bytes): use a multipart upload"
    await assert_error(response, 413, message)


async def test_a_completion_that_ran_unrecorded_is_answered_when_completed_again(
    gallery: Gallery,
) -> None:
    upload = await start(gallery)
    parts = await uploaded_parts(gallery, upload)
    # The store assembled the parts, but the answer (and its record) never came back.
    await gallery.storage.complete_multipart(upload["key"], upload["uploadId"], parts)

    done = await expect(await complete(gallery, upload, parts), 200)
    assert done["key"] == upload["key"]
    body = {"s3Key": upload["key"], "title": "Holiday"}
    record = await expect(await gallery.confirm(ALICE, body), 201)
    assert record["fileSize"] == len(FIRST + LAST)


async def test_a_completed_upload_is_a_conflict_for_everything_but_complete(
    gallery: Gallery,
) -> None:
    upload = await start(gallery)
    parts = await uploaded_parts(gallery, upload)
    await expect(await complete(gallery, upload, parts), 200)

    path = f"{BASE}/{upload['uploadId']}"
    message = "Upload already completed: confirm its key"
    for method, route in (("GET", path), ("GET", f"{path}/3"), ("DELETE", path)):
        response = await gallery.request(method, route, ALICE, params=_key(upload))
        await assert_error(response, 409, message)


async def test_at_most_100_parts_are_signed_at_once(gallery: Gallery) -> None:
    upload = await start(gallery)
    path = f"{BASE}/{upload['uploadId']}/batch"
    numbers = ",".join(str(n) for n in range(1, 102))
    query = {**_key(upload), "partNumbers": numbers}
    message = "At most 100 parts at once"
    response = await gallery.request("GET", path, ALICE, params=query)
    await assert_error(response, 400, message, details={"partNumbers": [message]})
    query["partNumbers"] = ",".join(str(n) for n in range(1, 101))
    batch = await expect(await gallery.request("GET", path, ALICE, params=query), 200)
    assert len(batch["presignedUrls"]) == 100
