"""One contract, run unchanged against every storage backend (local files and real S3)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from videoforge.errors import InvalidKey, ObjectNotFound, StorageError
from videoforge.storage import ObjectChanged, ObjectInfo, S3Storage, Storage

MiB = 1024 * 1024
DATA = bytes(range(256)) * 40  # 10 KiB that no off-by-one slice could match by accident


def url(signed: str) -> URL:
    # Presigned URLs are already encoded; re-quoting them would break the signature.
    return URL(signed, encoded=True)


def files_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*"))


async def collect(storage: Storage, prefix: str) -> list[ObjectInfo]:
    return [info async for info in storage.list(prefix)]


async def test_put_bytes_then_head_and_get_file_round_trip(storage: Storage, work: Path) -> None:
    stored = await storage.put_bytes("videos/a/clip.mp4", DATA, "video/mp4")
    assert (stored.key, stored.size) == ("videos/a/clip.mp4", len(DATA))

    info = await storage.head("videos/a/clip.mp4")
    assert info is not None
    assert (info.key, info.size, info.content_type) == ("videos/a/clip.mp4", len(DATA), "video/mp4")
    assert info.last_modified is not None

    await storage.get_file("videos/a/clip.mp4", work / "copy.mp4")
    assert (work / "copy.mp4").read_bytes() == DATA


async def test_read_bytes_returns_small_objects_and_refuses_missing_or_large_ones(
    storage: Storage,
) -> None:
    await storage.put_bytes("videos/hls/master.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    assert await storage.read_bytes("videos/hls/master.m3u8") == b"#EXTM3U\n"
    with pytest.raises(ObjectNotFound):
        await storage.read_bytes("videos/hls/missing.m3u8")
    with pytest.raises(StorageError):
        await storage.read_bytes("videos/hls/master.m3u8", max_bytes=3)


async def test_put_file_replaces_existing_object(storage: Storage, work: Path) -> None:
    source = work / "thumb.jpg"
    source.write_bytes(b"first version")
    await storage.put_file("videos/thumb.jpg", source, "image/jpeg")
    source.write_bytes(DATA)
    stored = await storage.put_file("videos/thumb.jpg", source, "image/jpeg")

    assert stored.size == len(DATA)
    await storage.get_file("videos/thumb.jpg", work / "back.jpg")
    assert (work / "back.jpg").read_bytes() == DATA


async def test_put_file_above_multipart_threshold_round_trips(storage: Storage, work: Path) -> None:
    if isinstance(storage, S3Storage):
        storage.multipart_threshold = storage.part_size = 5 * MiB  # S3's smallest part
    source = work / "big.mp4"
    source.write_bytes(DATA * (11 * MiB // len(DATA)))
    stored = await storage.put_file("videos/big.mp4", source, "video/mp4")

    assert stored.size == source.stat().st_size
    await storage.get_file("videos/big.mp4", work / "big-copy.mp4")
    assert (work / "big-copy.mp4").read_bytes() == source.read_bytes()


async def test_head_of_missing_key_is_none(storage: Storage) -> None:
    assert await storage.head("videos/missing.mp4") is None


async def test_get_file_of_missing_key_raises_object_not_found(
    storage: Storage, work: Path
) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.get_file("videos/missing.mp4", work / "out.mp4")
    assert files_under(work) == []


async def test_delete_removes_object_and_is_idempotent(storage: Storage) -> None:
    await storage.put_bytes("videos/gone.mp4", DATA, "video/mp4")
    await storage.delete("videos/gone.mp4")
    await storage.delete("videos/gone.mp4")
    await storage.delete("never/existed.mp4")

    assert await storage.head("videos/gone.mp4") is None


async def test_list_and_usage_cover_prefix_but_not_sibling_prefix(storage: Storage) -> None:
    await storage.put_bytes("out/job1/high.mp4", b"x" * 10, "video/mp4")
    await storage.put_bytes("out/job1/hls/master.m3u8", b"y" * 5, "application/vnd.apple.mpegurl")
    await storage.put_bytes("out/job10/high.mp4", b"z" * 7, "video/mp4")
    await storage.put_bytes("elsewhere.txt", b"w", "text/plain")

    listed = await collect(storage, "out/job1/")
    assert [i.key for i in listed] == ["out/job1/high.mp4", "out/job1/hls/master.m3u8"]
    assert [i.size for i in listed] == [10, 5]
    assert all(i.last_modified and i.last_modified.utcoffset() == timedelta(0) for i in listed)
    assert await storage.usage("out/job1/") == (2, 15)
    # A prefix is a plain string prefix, as in S3: `out/job1` also matches `out/job10/`.
    assert await storage.usage("out/job1") == (3, 22)
    assert await storage.usage("") == (4, 23)
    assert await storage.usage("nothing/here/") == (0, 0)


async def test_presigned_put_with_signed_content_type_stores_object(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_put("uploads/my clip.mp4", "video/mp4", 60)
    async with http.put(url(signed), data=DATA, headers={"Content-Type": "video/mp4"}) as resp:
        assert resp.status == 200, await resp.text()

    info = await storage.head("uploads/my clip.mp4")
    assert info is not None
    assert info.size == len(DATA)


async def test_presigned_put_with_other_content_type_is_refused(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_put("uploads/clip.mp4", "video/mp4", 60)
    headers = {"Content-Type": "text/html"}
    async with http.put(url(signed), data=DATA, headers=headers) as resp:
        assert 400 <= resp.status < 500

    assert await storage.head("uploads/clip.mp4") is None


async def put_through(http: aiohttp.ClientSession, signed: str, data: bytes) -> int:
    async with http.put(url(signed), data=data, headers={"Content-Type": "video/mp4"}) as resp:
        return resp.status


async def test_presigned_put_signed_for_a_size_refuses_other_lengths_and_stores_nothing(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_put("uploads/clip.mp4", "video/mp4", 60, size=len(DATA))
    assert await put_through(http, signed, DATA + b"x") == 403
    assert await put_through(http, signed, DATA[:-1]) == 403
    assert await storage.head("uploads/clip.mp4") is None

    assert await put_through(http, signed, DATA) == 200
    info = await storage.head("uploads/clip.mp4")
    assert info is not None and info.size == len(DATA)


async def test_get_file_of_a_version_since_replaced_raises_object_changed(
    storage: Storage, work: Path
) -> None:
    await storage.put_bytes("videos/clip.mp4", DATA, "video/mp4")
    first = await storage.head("videos/clip.mp4")
    assert first is not None and first.etag
    await storage.get_file("videos/clip.mp4", work / "first.mp4", first.version)
    assert (work / "first.mp4").read_bytes() == DATA

    await storage.put_bytes("videos/clip.mp4", bytes(reversed(DATA)), "video/mp4")  # same size
    with pytest.raises(ObjectChanged):
        await storage.get_file("videos/clip.mp4", work / "second.mp4", first.version)
    assert files_under(work) == [work / "first.mp4"]


async def test_presigned_put_after_seal_never_changes_what_a_sealed_read_returns(
    storage: Storage, http: aiohttp.ClientSession, work: Path
) -> None:
    signed = await storage.presign_put("uploads/clip.mp4", "video/mp4", 60)
    assert await put_through(http, signed, DATA) == 200
    sealed = await storage.seal("uploads/clip.mp4")
    assert sealed is not None and sealed.size == len(DATA)
    assert await storage.seal("uploads/missing.mp4") is None

    status = await put_through(http, signed, b"swapped!")
    if isinstance(storage, S3Storage):  # a presigned URL cannot be revoked: reads check
        assert status == 200
        with pytest.raises(ObjectChanged):
            await storage.get_file("uploads/clip.mp4", work / "copy.mp4", sealed.version)
    else:
        assert status == 409
        await storage.get_file("uploads/clip.mp4", work / "copy.mp4", sealed.version)
        assert (work / "copy.mp4").read_bytes() == DATA


async def test_presigned_get_returns_bytes(storage: Storage, http: aiohttp.ClientSession) -> None:
    await storage.put_bytes("videos/clip.mp4", DATA, "video/mp4")
    signed = await storage.presign_get("videos/clip.mp4", 60)
    async with http.get(url(signed)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "video/mp4"
        assert await resp.read() == DATA


async def test_presigned_get_with_range_returns_partial_content(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    await storage.put_bytes("videos/clip.mp4", DATA, "video/mp4")
    signed = await storage.presign_get("videos/clip.mp4", 60)
    async with http.get(url(signed), headers={"Range": "bytes=100-299"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 100-299/{len(DATA)}"
        assert await resp.read() == DATA[100:300]


async def test_expired_urls_are_refused(storage: Storage, http: aiohttp.ClientSession) -> None:
    await storage.put_bytes("videos/clip.mp4", DATA, "video/mp4")
    get_url = await storage.presign_get("videos/clip.mp4", 1)
    put_url = await storage.presign_put("uploads/late.mp4", "video/mp4", 1)
    await asyncio.sleep(2.1)

    async with http.get(url(get_url)) as resp:
        assert resp.status == 403
    async with http.put(url(put_url), data=DATA, headers={"Content-Type": "video/mp4"}) as resp:
        assert resp.status == 403
    assert await storage.head("uploads/late.mp4") is None


async def test_tampered_signature_is_refused(storage: Storage, http: aiohttp.ClientSession) -> None:
    await storage.put_bytes("videos/clip.mp4", DATA, "video/mp4")
    signed = await storage.presign_get("videos/clip.mp4", 60)
    assert signed[-1] in "0123456789abcdef"  # both backends end with the hex signature
    tampered = signed[:-1] + ("0" if signed[-1] != "0" else "1")

    async with http.get(url(tampered)) as resp:
        assert resp.status == 403


async def test_presigned_url_for_one_key_does_not_open_another(
    storage: Storage, http: aiohttp.ClientSession
) -> None:
    await storage.put_bytes("videos/public.mp4", b"public", "video/mp4")
    await storage.put_bytes("videos/secret.mp4", b"secret", "video/mp4")
    signed = await storage.presign_get("videos/public.mp4", 60)

    async with http.get(url(signed.replace("/public.mp4", "/secret.mp4"))) as resp:
        assert resp.status == 403


INVALID_KEYS = [
    "../x",
    "/abs",
    "a/../b",
    "a\x00b",
    "a//b",
    "",
    "./a",
    "a/",
    "a\\b",
    "a\nb",
    "k" * 1025,
]
INVALID_PREFIXES = ["../", "/abs/", "a//", "a/../", "/"]


def calls_with_key(storage: Storage, key: str, work: Path) -> list[Callable[[], Awaitable[object]]]:
    """Every keyed operation, each meant to be refused before touching anything."""
    return [
        lambda: storage.presign_put(key, "video/mp4", 60),
        lambda: storage.presign_get(key, 60),
        lambda: storage.head(key),
        lambda: storage.put_bytes(key, DATA, "video/mp4"),
        lambda: storage.put_file(key, work / "source.bin", "video/mp4"),
        lambda: storage.get_file(key, work / "out.bin"),
        lambda: storage.delete(key),
    ]


async def test_invalid_keys_are_refused_and_create_nothing(
    storage: Storage, tmp_path: Path, work: Path
) -> None:
    (work / "source.bin").write_bytes(DATA)
    before = files_under(tmp_path)
    for key in INVALID_KEYS:
        for call in calls_with_key(storage, key, work):
            with pytest.raises(InvalidKey):
                await call()

    assert files_under(tmp_path) == before
    assert await storage.usage("") == (0, 0)


async def test_invalid_prefixes_are_refused(storage: Storage) -> None:
    for prefix in INVALID_PREFIXES:
        with pytest.raises(InvalidKey):
            await collect(storage, prefix)
        with pytest.raises(InvalidKey):
            await storage.usage(prefix)


async def test_check_of_usable_storage_passes(storage: Storage) -> None:
    await storage.check()
