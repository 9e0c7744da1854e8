"""The local backend's own HTTP behaviour: limits, headers, containment and its secret."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.errors_support import assert_error
from tests.storage_support import ServerFactory, serve_storage, storage_config
from tests.support import free_port
from videoforge.errors import InvalidKey, StorageError
from videoforge.storage import LocalStorage
from videoforge.support.secretfile import load_or_create_secret

LIMIT = 1000


@pytest.fixture
async def storage(tmp_path: Path, aiohttp_server: ServerFactory) -> LocalStorage:
    port = free_port()
    config = storage_config(tmp_path / "data", port, {"max_upload_bytes": LIMIT})
    storage = await serve_storage(aiohttp_server, config, port)
    assert isinstance(storage, LocalStorage)
    return storage


def url(signed: str) -> URL:
    return URL(signed, encoded=True)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def temp_files(storage: LocalStorage) -> list[Path]:
    return files_under(storage.root / "tmp")


async def put(
    http: aiohttp.ClientSession, signed: str, body: object, content_type: str = "video/mp4"
) -> tuple[int, dict[str, str]]:
    async with http.put(url(signed), data=body, headers={"Content-Type": content_type}) as resp:
        body_json = await resp.json() if resp.content_type == "application/json" else {}
        return resp.status, body_json


async def test_put_with_content_length_over_limit_is_refused_with_413_and_leaves_no_files(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_put("uploads/big.mp4", "video/mp4", 60)
    status, body = await put(http, signed, b"x" * (LIMIT + 1))

    assert status == 413
    assert body == {"error": f"Upload larger than {LIMIT} bytes"}
    assert await storage.head("uploads/big.mp4") is None
    assert temp_files(storage) == []


async def test_chunked_put_over_limit_is_refused_with_413_and_leaves_no_files(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 100 + 2):
            yield b"x" * 100  # no Content-Length: only counting can catch it

    signed = await storage.presign_put("uploads/big.mp4", "video/mp4", 60)
    status, body = await put(http, signed, chunks())

    assert status == 413
    assert body == {"error": f"Upload larger than {LIMIT} bytes"}
    assert await storage.head("uploads/big.mp4") is None
    assert temp_files(storage) == []


async def test_put_of_exactly_the_limit_is_accepted(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_put("uploads/full.mp4", "video/mp4", 60)
    status, _ = await put(http, signed, b"x" * LIMIT)

    assert status == 200
    info = await storage.head("uploads/full.mp4")
    assert info is not None
    assert info.size == LIMIT


async def test_put_with_empty_body_is_refused_with_400(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_put("uploads/empty.mp4", "video/mp4", 60)
    status, body = await put(http, signed, b"")

    assert status == 400
    assert body == {"error": "Empty upload"}
    assert await storage.head("uploads/empty.mp4") is None


async def test_put_without_content_type_is_refused_with_403(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_put("uploads/clip.mp4", "video/mp4", 60)
    async with http.put(url(signed), data=b"data", skip_auto_headers=["Content-Type"]) as resp:
        await assert_error(resp, 403, "Content-Type does not match the signed URL")
    assert await storage.head("uploads/clip.mp4") is None


async def test_get_url_does_not_authorise_a_put(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_get("uploads/clip.mp4", 60)
    status, body = await put(http, signed, b"data", content_type="")

    assert status == 403
    assert body == {"error": "Invalid or missing URL signature"}
    assert await storage.head("uploads/clip.mp4") is None


async def test_get_sends_content_type_length_and_accept_ranges(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    await storage.put_bytes("out/hls/master.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    signed = await storage.presign_get("out/hls/master.m3u8", 60)
    async with http.get(url(signed)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert resp.headers["Content-Length"] == "8"
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert await resp.read() == b"#EXTM3U\n"


async def test_head_with_signed_get_url_sends_headers_without_body(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    await storage.put_bytes("out/seg1.m4s", b"s" * 42, "video/iso.segment")
    signed = await storage.presign_get("out/seg1.m4s", 60)
    async with http.head(url(signed)) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "video/iso.segment"
        assert resp.headers["Content-Length"] == "42"
        assert await resp.read() == b""


async def test_range_beyond_end_is_refused_with_416(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    await storage.put_bytes("out/seg.ts", b"t" * 10, "video/mp2t")
    signed = await storage.presign_get("out/seg.ts", 60)
    for wanted in ("bytes=100-200", "bytes=10-", "bytes=oops"):
        async with http.get(url(signed), headers={"Range": wanted}) as resp:
            await assert_error(resp, 416, "Requested range not satisfiable")
            assert resp.headers["Content-Range"] == "bytes */10"
    async with http.get(url(signed), headers={"Range": "bytes=9-"}) as resp:
        assert (resp.status, await resp.read()) == (206, b"t")


async def test_get_of_missing_object_is_404_json(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    signed = await storage.presign_get("out/missing.mp4", 60)
    async with http.get(url(signed)) as resp:
        await assert_error(resp, 404, "Object not found: out/missing.mp4")


async def test_get_without_signature_is_403_json(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    await storage.put_bytes("out/clip.mp4", b"data", "video/mp4")
    async with http.get(f"{storage.base_url}/media/out/clip.mp4") as resp:
        await assert_error(resp, 403, "Invalid or missing URL signature")


async def test_traversal_key_with_valid_signature_is_refused_with_400(
    storage: LocalStorage, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # Signed by hand: presign_* would refuse the key before signing it.
    expires = int(time.time()) + 60
    signature = storage.signer.sign("PUT", "../../escape.mp4", expires, "video/mp4")
    query = f"expires={expires}&content_type=video%2Fmp4&signature={signature}"
    signed = f"{storage.base_url}/media/..%2F..%2Fescape.mp4?{query}"
    status, body = await put(http, signed, b"data")

    assert status == 400
    assert body == {"error": "Invalid storage key: empty, '.' or '..' path segment"}
    assert not (tmp_path / "data" / "escape.mp4").exists()


async def test_symlink_out_of_root_is_refused_and_target_untouched(
    storage: LocalStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (storage.root / "objects" / "link").symlink_to(outside, target_is_directory=True)

    with pytest.raises(InvalidKey):
        await storage.put_bytes("link/planted.mp4", b"data", "video/mp4")
    with pytest.raises(InvalidKey):
        await storage.head("link/planted.mp4")
    assert files_under(outside) == []


async def test_precompressed_sibling_is_not_served_instead(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    await storage.put_bytes("out/data.json", b'{"real": true}', "application/json")
    await storage.put_bytes("out/data.json.gz", b"not this one", "application/gzip")
    signed = await storage.presign_get("out/data.json", 60)
    async with http.get(url(signed), headers={"Accept-Encoding": "gzip, br"}) as resp:
        assert resp.status == 200
        assert "Content-Encoding" not in resp.headers
        assert await resp.read() == b'{"real": true}'


async def test_key_with_spaces_percent_and_unicode_round_trips_over_http(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    key = "uploads/été 100% ?#+&=.mp4"
    status, _ = await put(http, await storage.presign_put(key, "video/mp4", 60), b"data")
    assert status == 200

    async with http.get(url(await storage.presign_get(key, 60))) as resp:
        assert resp.status == 200
        assert await resp.read() == b"data"


async def test_secret_file_is_private_and_reused_across_instances(
    storage: LocalStorage, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    assert stat.S_IMODE(storage.secret_path.stat().st_mode) == 0o600
    secret = storage.secret_path.read_bytes()
    await storage.put_bytes("out/clip.mp4", b"data", "video/mp4")

    async with LocalStorage(tmp_path / "data", storage.base_url, LIMIT) as other:
        signed = await other.presign_get("out/clip.mp4", 60)
    async with http.get(url(signed)) as resp:
        assert resp.status == 200
    assert storage.secret_path.read_bytes() == secret


def test_concurrent_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "storage.secret"
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: load_or_create_secret(path), range(16)))

    assert len(secrets) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["storage.secret"]


async def test_client_disconnect_mid_upload_leaves_no_temp_file(storage: LocalStorage) -> None:
    signed = url(await storage.presign_put("uploads/cut.mp4", "video/mp4", 60))
    _reader, writer = await asyncio.open_connection(signed.host, signed.port)
    writer.write(
        f"PUT {signed.raw_path_qs} HTTP/1.1\r\nHost: {signed.host}\r\n"
        f"Content-Type: video/mp4\r\nContent-Length: {LIMIT}\r\n\r\n".encode()
        + b"x" * 100
    )
    await writer.drain()
    await wait_until(lambda: bool(temp_files(storage)))  # the upload is under way
    writer.close()
    await writer.wait_closed()

    await wait_until(lambda: not temp_files(storage))
    assert await storage.head("uploads/cut.mp4") is None


async def test_list_ignores_temp_area_and_open_sweeps_stale_temp_files(
    storage: LocalStorage, tmp_path: Path
) -> None:
    stale, fresh = storage.root / "tmp" / "upload-stale", storage.root / "tmp" / "upload-fresh"
    stale.write_bytes(b"old")
    fresh.write_bytes(b"new")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)

    assert [info async for info in storage.list("")] == []
    async with LocalStorage(tmp_path / "data", storage.base_url, LIMIT):
        pass
    assert temp_files(storage) == [fresh]


async def test_delete_prunes_empty_directories_so_the_parent_key_is_storable(
    storage: LocalStorage,
) -> None:
    await storage.put_bytes("a/b/c.txt", b"deep", "text/plain")
    await storage.delete("a/b/c.txt")
    await storage.put_bytes("a", b"flat", "application/octet-stream")

    info = await storage.head("a")
    assert info is not None
    assert info.size == 4


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


async def test_storage_used_before_open_says_so(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "data", "http://127.0.0.1:1", LIMIT)
    with pytest.raises(StorageError, match="before open"):
        await storage.head("a.txt")
    with pytest.raises(StorageError, match="before open"):
        await storage.presign_get("a.txt", 60)


# --- multipart parts ---------------------------------------------------------------------------


def staged_files(storage: LocalStorage) -> list[str]:
    return [path.name for path in files_under(storage.root / "multipart")]


async def test_parts_together_may_not_outgrow_the_upload_limit(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    upload_id = await storage.create_multipart("uploads/big.mp4", "video/mp4")

    async def put_part(number: int, size: int) -> tuple[int, dict[str, str]]:
        signed = await storage.presign_part("uploads/big.mp4", upload_id, number, 60)
        return await put(http, signed, b"x" * size)

    assert (await put_part(1, 600))[0] == 200
    assert await put_part(2, 401) == (413, {"error": "Part larger than 400 bytes"})
    assert (await put_part(2, 400))[0] == 200
    # A part sent again replaces itself: only the other parts count against the limit.
    assert (await put_part(1, 600))[0] == 200
    assert [(p.number, p.size) for p in await storage.list_parts("uploads/big.mp4", upload_id)] == [
        (1, 600),
        (2, 400),
    ]


@pytest.mark.parametrize("change", ["partNumber", "uploadId", "expires"])
async def test_a_part_url_changed_in_any_signed_field_is_refused(
    storage: LocalStorage, http: aiohttp.ClientSession, change: str
) -> None:
    upload_id = await storage.create_multipart("uploads/big.mp4", "video/mp4")
    signed = URL(await storage.presign_part("uploads/big.mp4", upload_id, 1, 60), encoded=True)
    tampered = {"partNumber": "2", "uploadId": "0" * 32, "expires": str(int(time.time()) + 999)}
    changed = signed.update_query({change: tampered[change]})

    async with http.put(changed, data=b"x" * 10) as resp:
        await assert_error(resp, 403, "Invalid or missing URL signature")
    assert staged_files(storage) == ["upload.json"]


async def test_parts_arriving_together_are_counted_together_against_the_limit(
    storage: LocalStorage, http: aiohttp.ClientSession
) -> None:
    upload_id = await storage.create_multipart("uploads/big.mp4", "video/mp4")
    urls = [await storage.presign_part("uploads/big.mp4", upload_id, n, 60) for n in (1, 2)]

    answers = await asyncio.gather(*(put(http, signed, b"x" * 600) for signed in urls))

    assert sorted(status for status, _ in answers) == [200, 413]
    assert sum(p.size for p in await storage.list_parts("uploads/big.mp4", upload_id)) == 600
