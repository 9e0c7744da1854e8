"""S3-only behaviour: start-up against a missing bucket, and errors in plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from videoforge.config import build_config
from videoforge.errors import StorageError
from videoforge.storage import S3Storage, create_storage


def s3_config(tmp_path: Path, settings: dict[str, Any], **overrides: Any) -> Any:
    return build_config({"server": {"data_dir": str(tmp_path)}, "storage": settings | overrides})


async def test_check_of_missing_bucket_names_it(
    tmp_path: Path, s3_storage_settings: dict[str, Any]
) -> None:
    config = s3_config(tmp_path, s3_storage_settings, create_bucket=False)
    async with create_storage(config) as storage:
        assert isinstance(storage, S3Storage)
        with pytest.raises(StorageError, match=config.storage.bucket):
            await storage.check()


async def test_open_with_create_bucket_creates_it_once(
    tmp_path: Path, s3_storage_settings: dict[str, Any]
) -> None:
    config = s3_config(tmp_path, s3_storage_settings)
    async with create_storage(config) as storage:
        await storage.check()
    async with create_storage(config) as storage:  # the bucket now exists: still fine
        await storage.check()


async def test_wrong_credentials_fail_check_with_storage_error(
    tmp_path: Path, s3_storage_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with create_storage(s3_config(tmp_path, s3_storage_settings)) as storage:
        await storage.check()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    config = s3_config(tmp_path, s3_storage_settings, create_bucket=False)
    async with create_storage(config) as storage:
        with pytest.raises(StorageError):
            await storage.check()


async def test_upload_to_missing_bucket_raises_storage_error(
    tmp_path: Path, s3_storage_settings: dict[str, Any]
) -> None:
    config = s3_config(tmp_path, s3_storage_settings, create_bucket=False)
    async with create_storage(config) as storage:
        with pytest.raises(StorageError, match="upload"):
            await storage.put_bytes("a.txt", b"data", "text/plain")


async def test_storage_used_before_open_says_so(
    tmp_path: Path, s3_storage_settings: dict[str, Any]
) -> None:
    storage = create_storage(s3_config(tmp_path, s3_storage_settings))
    with pytest.raises(StorageError, match="before open"):
        await storage.head("a.txt")


async def test_public_endpoint_url_is_the_host_of_signed_urls_and_they_work(
    tmp_path: Path, s3_storage_settings: dict[str, Any]
) -> None:
    # The server talks to 127.0.0.1; clients are told "localhost": same store, another name.
    public = s3_storage_settings["endpoint_url"].replace("127.0.0.1", "localhost")
    config = s3_config(tmp_path, s3_storage_settings, public_endpoint_url=public)
    async with create_storage(config) as storage:
        url = await storage.presign_put("a/clip.mp4", "video/mp4", 60)
        assert url.startswith(public + "/")
        async with aiohttp.ClientSession() as http:
            put = await http.put(url, data=b"bytes", headers={"Content-Type": "video/mp4"})
            assert put.status == 200
            get = await http.get(await storage.presign_get("a/clip.mp4", 60))
            assert await get.read() == b"bytes"
            assert str(get.url).startswith(public + "/")
