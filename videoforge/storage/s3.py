"""S3 backend (AWS or any S3-compatible store such as SeaweedFS or MinIO) via aiobotocore."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from videoforge.config import StorageConfig
from videoforge.errors import ObjectNotFound, StorageError, StorageUnavailable
from videoforge.storage.base import (
    ObjectChanged,
    ObjectInfo,
    ObjectVersion,
    Storage,
    check_presign_args,
)
from videoforge.storage.multipart import (
    InvalidParts,
    PendingUpload,
    UploadedPart,
    UploadNotFound,
    parts_to_assemble,
)
from videoforge.storage.validation import validate_key, validate_prefix

MiB = 1024 * 1024
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# Failures to reach the store at all (refused, timed out, cut off), as opposed to its answers.
UNREACHABLE = (
    botocore.exceptions.ConnectionError,  # endpoint refused, connect timeout, connection closed
    botocore.exceptions.ReadTimeoutError,
    aiohttp.ClientConnectionError,
)
PRECONDITION_FAILED_CODES = frozenset({"412", "PreconditionFailed"})
NO_UPLOAD_CODES = frozenset({"NoSuchUpload"})
INVALID_PARTS_CODES = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall"})


class S3Storage(Storage):
    """One aiobotocore client for the app's lifetime; files larger than
    `multipart_threshold` go up in `part_size` parts so they never sit in memory."""

    def __init__(
        self,
        config: StorageConfig,
        *,
        multipart_threshold: int = 64 * MiB,
        part_size: int = 16 * MiB,
    ) -> None:
        self.config = config
        self.bucket = config.bucket
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._stack = contextlib.AsyncExitStack()
        self._client_or_none: Any = None
        self._presigner: Any = None

    @property
    def _client(self) -> Any:
        if self._client_or_none is None:
            raise StorageError("S3 storage used before open()")
        return self._client_or_none

    @property
    def _signer(self) -> Any:
        if self._presigner is None:
            raise StorageError("S3 storage used before open()")
        return self._presigner

    async def open(self) -> None:
        try:
            self._client_or_none = await self._connect(self.config.endpoint_url)
            # Signed URLs name the host clients reach, which may differ from ours (compose).
            public = self.config.public_endpoint_url
            self._presigner = await self._connect(public) if public else self._client_or_none
            if self.config.create_bucket:
                await self._ensure_bucket()
        except BaseException:
            await self.close()
            raise

    async def _connect(self, endpoint_url: str) -> Any:
        endpoint = endpoint_url or None
        client_config = AioConfig(
            signature_version="s3v4",
            # Self-hosted stores rarely have wildcard DNS for bucket subdomains.
            s3={"addressing_style": "path" if endpoint else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            # Not every S3-compatible store understands the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = get_session().create_client(
            "s3", endpoint_url=endpoint, region_name=self.config.region, config=client_config
        )
        return await self._stack.enter_async_context(client)

    async def close(self) -> None:
        self._client_or_none = self._presigner = None
        await self._stack.aclose()

    async def _ensure_bucket(self) -> None:
        try:
            await self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in NOT_FOUND_CODES | {"NoSuchBucket"}:
                raise self._error(exc, "check bucket", "") from None
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.config.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
        try:
            await self._client.create_bucket(**kwargs)
        except ClientError as exc:
            # Another process may have created it between our HEAD and CREATE.
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._error(exc, "create bucket", "") from None

    async def presign_put(
        self, key: str, content_type: str, expires_in: int, size: int | None = None
    ) -> str:
        validate_key(key)
        check_presign_args(expires_in, content_type)
        # ContentType (and ContentLength) in Params make signed headers: the store refuses a
        # PUT with any other (checked against SeaweedFS: 403 SignatureDoesNotMatch).
        params: dict[str, str | int] = {"Bucket": self.bucket, "Key": key}
        params["ContentType"] = content_type
        if size is not None:
            params["ContentLength"] = size
        with self._errors("presign PUT", key):
            url: str = await self._signer.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=expires_in
            )
        return url

    async def presign_get(self, key: str, expires_in: int) -> str:
        validate_key(key)
        check_presign_args(expires_in)
        params = {"Bucket": self.bucket, "Key": key}
        with self._errors("presign GET", key):
            url: str = await self._signer.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in
            )
        return url

    async def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        try:
            with self._errors("head", key, missing_ok=True):
                resp = await self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return None
        modified = _utc(resp.get("LastModified"))
        return ObjectInfo(
            key, resp["ContentLength"], resp.get("ContentType"), modified, resp.get("ETag")
        )

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        validate_key(key)
        with self._errors("upload", key):
            await self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
        return ObjectInfo(key, len(data), content_type, None)

    async def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        validate_key(key)
        size = (await asyncio.to_thread(path.stat)).st_size
        if size <= self.multipart_threshold:
            return await self.put_bytes(key, await asyncio.to_thread(path.read_bytes), content_type)
        with self._errors("upload", key):
            await self._put_multipart(key, path, content_type)
        return ObjectInfo(key, size, content_type, None)

    async def _put_multipart(self, key: str, path: Path, content_type: str) -> None:
        target = {"Bucket": self.bucket, "Key": key}
        upload = await self._client.create_multipart_upload(**target, ContentType=content_type)
        upload_id = upload["UploadId"]
        try:
            parts = await self._upload_parts(target, upload_id, path)
            await self._client.complete_multipart_upload(
                **target, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # An unfinished multipart upload keeps its parts (and their cost) until aborted.
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._client.abort_multipart_upload(**target, UploadId=upload_id)
                )
            raise

    async def _upload_parts(
        self, target: dict[str, str], upload_id: str, path: Path
    ) -> tuple[dict[str, Any], ...]:
        parts = []
        with path.open("rb") as fh:
            number = 1
            while chunk := await asyncio.to_thread(fh.read, self.part_size):
                resp = await self._client.upload_part(
                    **target, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"ETag": resp["ETag"], "PartNumber": number})
                number += 1
        return tuple(parts)

    # --- multipart uploads -------------------------------------------------------------------

    async def _create_multipart(self, key: str, content_type: str) -> str:
        with self._errors("start a multipart upload of", key):
            upload = await self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )
        upload_id: str = upload["UploadId"]
        return upload_id

    async def _presign_part(
        self, key: str, upload_id: str, part_number: int, expires_in: int
    ) -> str:
        params = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
        with self._errors("presign a part of", key):
            url: str = await self._signer.generate_presigned_url(
                "upload_part", Params={**params, "PartNumber": part_number}, ExpiresIn=expires_in
            )
        return url

    async def _list_parts(self, key: str, upload_id: str) -> tuple[UploadedPart, ...]:
        paginator = self._client.get_paginator("list_parts")
        items: list[dict[str, Any]] = []
        with self._multipart_errors("list the parts of", key):
            pages = paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id)
            async for page in pages:
                items.extend(page.get("Parts", ()))
        # SeaweedFS lists every PUT of a part number, not only the last: the newest one counts
        # (it dates them to the second: within one second, the one listed last).
        newest = {item["PartNumber"]: item for item in sorted(items, key=_part_age)}
        return tuple(
            UploadedPart(number, item["Size"], item["ETag"])
            for number, item in sorted(newest.items())
        )

    async def _complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> ObjectInfo:
        # Checked here too: not every S3-compatible store enforces S3's rules on completion.
        chosen = parts_to_assemble(parts, await self._list_parts(key, upload_id))
        listed = [{"PartNumber": part.number, "ETag": part.etag} for part in chosen]
        with self._multipart_errors("complete the upload of", key):
            await self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": listed},
            )
        info = await self.head(key)
        if info is None:
            raise StorageError(f"S3 complete the upload of {self.bucket}/{key}: no object")
        return info

    async def _abort_multipart(self, key: str, upload_id: str) -> None:
        with self._multipart_errors("abort the upload of", key):
            await self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id
            )

    async def pending_uploads(self) -> AsyncIterator[PendingUpload]:
        paginator = self._client.get_paginator("list_multipart_uploads")
        with self._errors("list multipart uploads in", ""):
            async for page in paginator.paginate(Bucket=self.bucket):
                for item in page.get("Uploads", ()):
                    key, upload_id = item["Key"], item["UploadId"]
                    try:
                        size = sum(part.size for part in await self._list_parts(key, upload_id))
                    except UploadNotFound:
                        continue  # completed or aborted since the listing
                    started = _utc(item.get("Initiated"))
                    yield PendingUpload(key, upload_id, started, size)

    @contextlib.contextmanager
    def _multipart_errors(self, action: str, key: str) -> Iterator[None]:
        """`_errors`, with the store's answers about an upload turned into ours."""
        with self._errors(action, key):
            try:
                yield
            except ClientError as exc:
                code = _error_code(exc)
                if code in NO_UPLOAD_CODES:
                    raise UploadNotFound() from None
                if code in INVALID_PARTS_CODES:
                    raise InvalidParts(f"Invalid part list: {code}") from None
                raise

    async def read_bytes(self, key: str, max_bytes: int = 16 * MiB) -> bytes:
        validate_key(key)
        with self._errors("download", key, missing_ok=True):
            resp = await self._client.get_object(Bucket=self.bucket, Key=key)
            if resp["ContentLength"] > max_bytes:
                resp["Body"].close()
                raise StorageError(f"Object too large to read into memory: {key}")
            async with resp["Body"] as body:
                data: bytes = await body.read()
        return data

    async def get_file(self, key: str, dest: Path, version: ObjectVersion | None = None) -> None:
        validate_key(key)
        partial = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            with self._errors("download", key, missing_ok=True):
                resp = await self._get_version(key, version)
                async with resp["Body"] as body:
                    with partial.open("wb") as fh:
                        async for chunk in body.iter_chunks(MiB):
                            await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(partial.replace, dest)
        finally:
            partial.unlink(missing_ok=True)

    async def _get_version(self, key: str, version: ObjectVersion | None) -> Any:
        """GetObject, of `version` only: the store itself refuses another ETag (If-Match), and
        the answer is checked too, for a store that ignores the condition."""
        if version is None:
            return await self._client.get_object(Bucket=self.bucket, Key=key)
        condition = {"IfMatch": version.etag} if version.etag else {}
        try:
            resp = await self._client.get_object(Bucket=self.bucket, Key=key, **condition)
        except ClientError as exc:
            if _error_code(exc) in PRECONDITION_FAILED_CODES:
                raise ObjectChanged() from None
            raise
        try:
            version.check(resp["ContentLength"], resp.get("ETag"))
        except ObjectChanged:
            resp["Body"].close()
            raise
        return resp

    async def local_path(self, key: str) -> Path | None:
        validate_key(key)
        return None  # every object is behind a URL, even on this machine

    async def delete(self, key: str) -> None:
        validate_key(key)
        try:
            with self._errors("delete", key, missing_ok=True):
                await self._client.delete_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            pass  # S3 itself answers 204 here; some compatible stores say 404

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors("list", prefix):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    modified = _utc(item.get("LastModified"))
                    yield ObjectInfo(item["Key"], item["Size"], None, modified)

    async def check(self) -> None:
        where = self.config.endpoint_url or "AWS"
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = _error_code(exc)
            if code in NOT_FOUND_CODES | {"NoSuchBucket"}:
                raise StorageError(f"S3 bucket {self.bucket!r} does not exist at {where}") from None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise StorageError(
                    f"S3 bucket {self.bucket!r} at {where}: access denied (check credentials)"
                ) from None
            raise StorageError(f"S3 bucket {self.bucket!r} at {where}: {exc}") from None
        except BotoCoreError as exc:
            raise StorageError(f"S3 at {where} is not usable: {exc}") from None

    async def cors_rules(self) -> tuple[dict[str, Any], ...]:
        """The bucket's CORS rules (GetBucketCors); none if it has no CORS configuration."""
        with self._errors("read the CORS rules of", ""):
            try:
                resp = await self._client.get_bucket_cors(Bucket=self.bucket)
            except ClientError as exc:
                if _error_code(exc) == "NoSuchCORSConfiguration":
                    return ()
                raise
        return tuple(resp.get("CORSRules", ()))

    @contextlib.contextmanager
    def _errors(self, action: str, key: str, *, missing_ok: bool = False) -> Iterator[None]:
        """Map botocore failures to our errors; a missing key becomes `ObjectNotFound`."""
        try:
            yield
        except ClientError as exc:
            if missing_ok and _error_code(exc) in NOT_FOUND_CODES:
                raise ObjectNotFound(f"Object not found: {key}") from None
            raise self._error(exc, action, key) from None
        except UNREACHABLE as exc:
            # The store is down or out of reach (after botocore's own retries): an outage the
            # client may retry, not a failed operation.
            where = self.config.endpoint_url or "AWS"
            message = f"S3 {action} {self.bucket}/{key} at {where}: {exc}"
            raise StorageUnavailable(message) from exc
        except (BotoCoreError, aiohttp.ClientError) as exc:
            # aiohttp errors surface when a streamed body breaks off mid-download.
            raise StorageError(f"S3 {action} {self.bucket}/{key} failed: {exc}") from None

    def _error(self, exc: ClientError, action: str, key: str) -> StorageError:
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        code = _error_code(exc)
        return StorageError(f"S3 {action} {self.bucket}/{key} failed: {code}: {message}")


def _utc(moment: datetime | None) -> datetime | None:
    # botocore parses listings in local time and HEADs in UTC; callers get UTC either way.
    return moment.astimezone(UTC) if moment else None


def _part_age(item: dict[str, Any]) -> datetime:
    return item.get("LastModified") or datetime.min.replace(tzinfo=UTC)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
