"""Uploads through the HTTP API: generate-url, the direct PUT to storage, confirm, stream back."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.errors_support import assert_error
from tests.fixtures.config import MakeConfig
from tests.gallery_support import (
    ALICE,
    BOB,
    DATA,
    KEY_PATTERN,
    SAFE_NAME,
    Gallery,
    StartGallery,
    assert_full_record,
    assert_list_item,
    expect,
    signed,
)

GENERATE_URL = "/api/upload/generate-url"


def safe_name(key: str, user: str = ALICE) -> str:
    """The `safeName` part of a key the server generated for `user`, checked for safety."""
    match = KEY_PATTERN.fullmatch(key)
    assert match is not None, key
    assert match["user"] == user
    name = match["name"]
    assert SAFE_NAME.fullmatch(name), name
    assert ".." not in name and not name.startswith(".")
    return name


# --- use case 1, end to end, on both storage backends -------------------------------------------


async def test_upload_confirm_list_and_stream_round_trip_on_each_storage_backend(
    start_gallery: StartGallery, make_config: MakeConfig, storage_settings: dict[str, Any]
) -> None:
    gallery = await start_gallery(make_config(storage=storage_settings))

    ticket = await expect(await gallery.generate_url(ALICE), 200)
    assert set(ticket) >= {"uploadUrl", "s3Key", "expiresIn"}
    assert ticket["expiresIn"] == 3600
    assert re.fullmatch(r"gallery/alice/\d{13}-my-video\.mp4", ticket["s3Key"]), ticket["s3Key"]

    await gallery.put_object(ticket["uploadUrl"], DATA, "video/mp4")
    stored = await gallery.storage.head(ticket["s3Key"])
    assert stored is not None and stored.size == len(DATA)

    confirm = {
        "s3Key": ticket["s3Key"],
        "title": "My Amazing Video",
        "description": "A video I uploaded",
        "visibility": "public",
    }
    record = await expect(await gallery.confirm(ALICE, confirm), 201)
    assert_full_record(record)
    assert record["userId"] == ALICE
    assert record["title"] == "My Amazing Video"
    assert record["description"] == "A video I uploaded"
    assert record["s3Key"] == ticket["s3Key"]
    assert record["status"] == "uploaded"
    assert record["visibility"] == "public"
    assert record["views"] == 0
    assert record["fileSize"] == len(DATA)
    assert record["jobId"] is None

    listing = await gallery.listing(ALICE)
    assert [item["id"] for item in listing["videos"]] == [record["id"]]
    assert_list_item(listing["videos"][0])
    assert listing["pagination"] == {"total": 1, "page": 1, "limit": 10, "totalPages": 1}

    stream = await expect(await gallery.stream(record["id"], ALICE), 200)
    assert set(stream) >= {"streamUrl", "expiresIn"}
    assert isinstance(stream["expiresIn"], int) and stream["expiresIn"] > 0

    assert await gallery.get_object(stream["streamUrl"]) == (200, DATA)
    async with gallery.http.get(
        signed(stream["streamUrl"]), headers={"Range": "bytes=100-299"}
    ) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 100-299/{len(DATA)}"
        assert await response.read() == DATA[100:300]


async def test_confirm_with_defaults_is_public_with_empty_description(gallery: Gallery) -> None:
    key = await gallery.uploaded_key(ALICE)
    record = await expect(await gallery.confirm(ALICE, {"s3Key": key, "title": "Plain"}), 201)
    assert record["visibility"] == "public"
    assert record["description"] == ""


async def test_confirm_strips_the_title(gallery: Gallery) -> None:
    key = await gallery.uploaded_key(ALICE)
    body = {"s3Key": key, "title": "  Spaced out  "}
    record = await expect(await gallery.confirm(ALICE, body), 201)
    assert record["title"] == "Spaced out"


# --- generate-url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"contentType": "video/mp4"},
        {"filename": "", "contentType": "video/mp4"},
    ],
    ids=["missing", "empty"],
)
async def test_generate_url_without_filename_is_400_filename_is_required(
    gallery: Gallery, body: dict[str, Any]
) -> None:
    error = await expect(await gallery.generate_url(ALICE, body), 400)
    assert error["error"] == "Filename is required"
    assert "filename" in error["details"]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("a/b\\c.mp4", "c.mp4"),
        ("..", "video"),
        ("...", "video"),
        (".hidden.mp4", None),
        ("con..cat.mp4", None),
        ("x" * 251 + ".mp4", None),
        ("%2e%2e%2fetc.mp4", None),
    ],
    ids=[
        "dotdot-path",
        "mixed-separators",
        "dotdot",
        "dots-only",
        "leading-dot",
        "inner-dotdot",
        "255-chars",
        "percent-encoded",
    ],
)
async def test_generate_url_with_hostile_filename_gives_a_safe_key(
    gallery: Gallery, filename: str, expected: str | None
) -> None:
    body = {"filename": filename, "contentType": "video/mp4"}
    ticket = await expect(await gallery.generate_url(ALICE, body), 200)
    name = safe_name(ticket["s3Key"])
    if expected is not None:
        assert name == expected
    if filename.endswith(".mp4"):
        assert name.endswith(".mp4")
    assert ticket["s3Key"].count("/") == 2


async def test_generate_url_with_unicode_filename_keeps_the_ascii_parts(gallery: Gallery) -> None:
    body = {"filename": "vidéo 🎬.mp4", "contentType": "video/mp4"}
    ticket = await expect(await gallery.generate_url(ALICE, body), 200)
    name = safe_name(ticket["s3Key"])
    assert name.startswith("vid") and name.endswith(".mp4")


async def test_generate_url_with_filename_over_255_chars_is_400(gallery: Gallery) -> None:
    body = {"filename": "a" * 996 + ".mp4", "contentType": "video/mp4"}
    error = await expect(await gallery.generate_url(ALICE, body), 400)
    assert "filename" in error["details"]


async def test_generate_url_for_hostile_filename_accepts_the_upload(gallery: Gallery) -> None:
    body = {"filename": "../../etc/passwd", "contentType": "video/mp4"}
    ticket = await expect(await gallery.generate_url(ALICE, body), 200)
    await gallery.put_object(ticket["uploadUrl"], DATA, "video/mp4")
    info = await gallery.storage.head(ticket["s3Key"])
    assert info is not None and info.size == len(DATA)


async def test_generate_url_without_content_type_is_400(gallery: Gallery) -> None:
    error = await expect(await gallery.generate_url(ALICE, {"filename": "a.mp4"}), 400)
    assert error["error"] == "Content type is required"


@pytest.mark.parametrize(
    "content_type", ["image/png", "text/html", "application/octet-stream", "video", "video/", "x"]
)
async def test_generate_url_with_non_video_content_type_is_400(
    gallery: Gallery, content_type: str
) -> None:
    body = {"filename": "a.mp4", "contentType": content_type}
    error = await expect(await gallery.generate_url(ALICE, body), 400)
    if content_type.count("/") == 1 and all(content_type.split("/")):
        assert error["error"] == "Only video uploads are allowed"


async def test_generate_url_with_file_size_over_max_is_413(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start_gallery(make_config(storage={"max_upload_bytes": 1000}))
    body = {"filename": "a.mp4", "contentType": "video/mp4", "fileSize": 1001}
    error = await expect(await gallery.generate_url(ALICE, body), 413)
    assert error == {"error": "File too large (max 1000 bytes)"}

    at_limit = {**body, "fileSize": 1000}
    await expect(await gallery.generate_url(ALICE, at_limit), 200)


@pytest.mark.parametrize("size", [0, -5, "big"])
async def test_generate_url_with_invalid_file_size_is_400(gallery: Gallery, size: Any) -> None:
    body = {"filename": "a.mp4", "contentType": "video/mp4", "fileSize": size}
    error = await expect(await gallery.generate_url(ALICE, body), 400)
    assert "fileSize" in error["details"]


async def test_generate_url_without_token_is_401(gallery: Gallery) -> None:
    error = await expect(await gallery.generate_url(None), 401)
    assert error == {"error": "Authentication required"}


@pytest.mark.parametrize(
    "authorization", ["Bearer not-a-token", "Bearer ", "Basic YWxpY2U6cHc=", "Bearer a.b.c"]
)
async def test_generate_url_with_bad_token_is_401(gallery: Gallery, authorization: str) -> None:
    body = {"filename": "a.mp4", "contentType": "video/mp4"}
    response = await gallery.client.post(
        GENERATE_URL, json=body, headers={"Authorization": authorization}
    )
    error = await expect(response, 401)
    assert isinstance(error["error"], str)


async def test_generate_url_with_unknown_field_is_400_naming_it(gallery: Gallery) -> None:
    body = {"filename": "a.mp4", "contentType": "video/mp4", "bucket": "other"}
    error = await expect(await gallery.generate_url(ALICE, body), 400)
    assert "bucket" in error["details"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "Request body is not valid JSON"),
        (b"", "Request body is required"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b"\xff\xfe", "Request body is not valid JSON"),
    ],
)
async def test_generate_url_with_malformed_json_is_400(
    gallery: Gallery, raw: bytes, message: str
) -> None:
    response = await gallery.request(
        "POST", GENERATE_URL, ALICE, data=raw, headers={"Content-Type": "application/json"}
    )
    await assert_error(response, 400, message)


async def test_upload_url_refuses_a_put_with_another_content_type(gallery: Gallery) -> None:
    ticket = await expect(await gallery.generate_url(ALICE), 200)
    headers = {"Content-Type": "text/html"}
    async with gallery.http.put(
        signed(ticket["uploadUrl"]), data=b"<script>", headers=headers
    ) as response:
        await assert_error(response, 403, "Content-Type does not match the signed URL")
    assert await gallery.storage.head(ticket["s3Key"]) is None


# --- confirm ------------------------------------------------------------------------------------


async def assert_nothing_listed(gallery: Gallery, *users: str) -> None:
    for user in users:
        listing = await gallery.listing(user, mine="true")
        assert listing["videos"] == []
        assert listing["pagination"]["total"] == 0


async def test_confirm_with_foreign_key_is_forbidden(gallery: Gallery) -> None:
    bobs_key = await gallery.uploaded_key(BOB)
    response = await gallery.confirm(ALICE, {"s3Key": bobs_key, "title": "Stolen"})
    assert await expect(response, 403) == {"error": "Access denied"}
    await assert_nothing_listed(gallery, ALICE, BOB)


INVALID_KEY = "Invalid storage key."


@pytest.mark.parametrize(
    ("key", "problems"),
    [
        ("gallery/alice/../bob/x.mp4", [INVALID_KEY]),
        ("gallery/alice/../../etc/passwd", [INVALID_KEY]),
        ("gallery/alice/./x.mp4", [INVALID_KEY]),
        ("gallery/alice//x.mp4", [INVALID_KEY]),
        ("/gallery/alice/x.mp4", [INVALID_KEY]),
        ("gallery/alice/a\\..\\..\\x.mp4", [INVALID_KEY]),
        ("gallery/alice/", [INVALID_KEY]),
        ("", ["Length must be between 1 and 256.", INVALID_KEY]),
    ],
)
async def test_confirm_with_forged_key_is_refused(
    gallery: Gallery, key: str, problems: list[str]
) -> None:
    # The object the forged key might resolve to exists, so only validation can refuse it.
    await gallery.storage.put_bytes("gallery/bob/x.mp4", DATA, "video/mp4")
    response = await gallery.confirm(ALICE, {"s3Key": key, "title": "Forged"})
    await assert_error(response, 400, f"s3Key: {problems[0]}", {"s3Key": problems})
    await assert_nothing_listed(gallery, ALICE, BOB)


async def test_confirm_with_nul_in_key_is_refused_before_validation(gallery: Gallery) -> None:
    response = await gallery.confirm(ALICE, {"s3Key": "gallery/alice/\x00x.mp4", "title": "F"})
    await assert_error(response, 400, "Request body must not contain NUL characters")
    await assert_nothing_listed(gallery, ALICE, BOB)


async def test_confirm_with_dotdot_key_under_own_prefix_is_400(gallery: Gallery) -> None:
    await gallery.storage.put_bytes("gallery/bob/x.mp4", DATA, "video/mp4")
    response = await gallery.confirm(ALICE, {"s3Key": "gallery/alice/../bob/x.mp4", "title": "F"})
    await assert_error(response, 400, f"s3Key: {INVALID_KEY}", {"s3Key": [INVALID_KEY]})


async def test_confirm_without_s3_key_is_400(gallery: Gallery) -> None:
    error = await expect(await gallery.confirm(ALICE, {"title": "No key"}), 400)
    assert "s3Key" in error["details"]


async def test_confirm_of_missing_object_is_404(gallery: Gallery) -> None:
    ticket = await expect(await gallery.generate_url(ALICE), 200)
    response = await gallery.confirm(ALICE, {"s3Key": ticket["s3Key"], "title": "Never sent"})
    assert await expect(response, 404) == {"error": "Uploaded file not found"}
    await assert_nothing_listed(gallery, ALICE)


async def test_confirm_same_key_twice_is_409(gallery: Gallery) -> None:
    key = await gallery.uploaded_key(ALICE)
    await expect(await gallery.confirm(ALICE, {"s3Key": key, "title": "Once"}), 201)
    response = await gallery.confirm(ALICE, {"s3Key": key, "title": "Twice"})
    assert await expect(response, 409) == {"error": "Video already confirmed"}
    listing = await gallery.listing(ALICE, mine="true")
    assert [item["title"] for item in listing["videos"]] == ["Once"]


async def test_confirm_of_object_over_max_size_is_413_and_deletes_it(
    start_gallery: StartGallery, make_config: MakeConfig
) -> None:
    gallery = await start_gallery(make_config(storage={"max_upload_bytes": 1000}))
    ticket = await expect(await gallery.generate_url(ALICE), 200)
    key = ticket["s3Key"]
    # Written behind the API's back, as a client ignoring the declared size could on S3.
    await gallery.storage.put_bytes(key, b"x" * 1001, "video/mp4")

    response = await gallery.confirm(ALICE, {"s3Key": key, "title": "Too big"})
    error = await expect(response, 413)
    assert isinstance(error["error"], str)
    assert await gallery.storage.head(key) is None
    await assert_nothing_listed(gallery, ALICE)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"visibility": "secret"}, "visibility"),
        ({"visibility": "PUBLIC"}, "visibility"),
        ({"visibility": None}, "visibility"),
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"title": 42}, "title"),
        ({"description": "d" * 5001}, "description"),
    ],
    ids=[
        "unknown-visibility",
        "uppercase-visibility",
        "null-visibility",
        "null-title",
        "empty-title",
        "blank-title",
        "long-title",
        "numeric-title",
        "long-description",
    ],
)
async def test_confirm_with_invalid_field_is_400_and_creates_nothing(
    gallery: Gallery, fields: dict[str, Any], field: str
) -> None:
    key = await gallery.uploaded_key(ALICE)
    body = {"s3Key": key, "title": "Valid", **fields}
    error = await expect(await gallery.confirm(ALICE, body), 400)
    assert field in error["details"]
    await assert_nothing_listed(gallery, ALICE)


async def test_confirm_without_title_is_400_and_creates_nothing(gallery: Gallery) -> None:
    key = await gallery.uploaded_key(ALICE)
    error = await expect(await gallery.confirm(ALICE, {"s3Key": key}), 400)
    assert "title" in error["details"]
    await assert_nothing_listed(gallery, ALICE)


async def test_confirm_with_title_at_limits_is_accepted(gallery: Gallery) -> None:
    key = await gallery.uploaded_key(ALICE)
    body = {"s3Key": key, "title": "t" * 200, "description": "d" * 5000}
    record = await expect(await gallery.confirm(ALICE, body), 201)
    assert record["title"] == "t" * 200
    assert len(record["description"]) == 5000


async def test_confirm_without_token_is_401(gallery: Gallery) -> None:
    key = await gallery.uploaded_key(ALICE)
    response = await gallery.confirm(None, {"s3Key": key, "title": "Anonymous"})
    assert await expect(response, 401) == {"error": "Authentication required"}
    await assert_nothing_listed(gallery, ALICE)


async def test_confirm_after_refusals_still_works_for_the_owner(gallery: Gallery) -> None:
    key = await gallery.uploaded_key(ALICE)
    refused = await gallery.confirm(BOB, {"s3Key": key, "title": "Bob's try"})
    await assert_error(refused, 403, "Access denied")
    blank = await gallery.confirm(ALICE, {"s3Key": key, "title": ""})
    await assert_error(blank, 400, "title: Must not be blank.", {"title": ["Must not be blank."]})
    record = await expect(await gallery.confirm(ALICE, {"s3Key": key, "title": "Mine"}), 201)
    assert record["userId"] == ALICE
