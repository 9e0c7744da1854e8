"""A client of the videoforge HTTP API: the calls the command line makes, one method each."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from aiohttp import hdrs
from yarl import URL

from videoforge.model import FINAL

CHUNK_BYTES = 1024 * 1024
MULTIPART = "/api/uploads/s3/multipart"
# No overall limit: an upload or a followed job may take hours. A silent peer still times out:
# the event stream sends a keep-alive every 15 s, so two minutes of silence means it is gone.
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
_S3_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.DOTALL)


class ApiError(Exception):
    """A step the server (or storage) refused: its message, and its HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class UploadTicket:
    """Where to PUT a new upload, and the key to confirm it with."""

    url: str
    key: str
    expires_in: int


@dataclass(frozen=True)
class Multipart:
    """A multipart upload the server started: its storage key and upload id."""

    key: str
    upload_id: str

    @property
    def query(self) -> dict[str, str]:
        return {"key": self.key}


@dataclass(frozen=True)
class StoredPart:
    """One part the storage holds already: its size and ETag."""

    size: int
    etag: str


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of a job: `status` or `progress`, with the whole job."""

    kind: str
    job: dict[str, Any]

    @property
    def is_final(self) -> bool:
        return self.job.get("status") in FINAL


@contextlib.asynccontextmanager
async def connect(server: str, token: str) -> AsyncIterator[VideoforgeClient]:
    """A client of the API at `server` (e.g. `http://127.0.0.1:8080`) as the holder of `token`."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield VideoforgeClient(server, token, session)


class VideoforgeClient:
    """The API as one user sees it; every failure is an `ApiError` with the server's message."""

    def __init__(self, server: str, token: str, session: aiohttp.ClientSession) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.session = session

    async def upload_url(self, filename: str, content_type: str, size: int) -> UploadTicket:
        """A signed URL to PUT a file of `size` bytes to."""
        body = {"filename": filename, "contentType": content_type, "fileSize": size}
        ticket = await self._call("POST", "/api/upload/generate-url", json=body)
        return UploadTicket(ticket["uploadUrl"], ticket["s3Key"], ticket["expiresIn"])

    async def put_file(
        self,
        url: str,
        path: Path,
        content_type: str,
        sent: Callable[[int], object] = lambda _: None,
    ) -> None:
        """Stream `path` to a signed URL in chunks, calling `sent(n)` after each chunk."""
        fh = await asyncio.to_thread(path.open, "rb")
        with fh:
            size = os.fstat(fh.fileno()).st_size
            await self._put(url, fh, size, {hdrs.CONTENT_TYPE: content_type}, sent)

    async def start_multipart(self, filename: str, content_type: str, size: int) -> Multipart:
        """A new multipart upload of a file of `size` bytes."""
        body = {"filename": filename, "type": content_type, "size": size}
        started = await self._call("POST", MULTIPART, json=body)
        return Multipart(started["key"], started["uploadId"])

    async def stored_parts(self, upload: Multipart) -> dict[int, StoredPart]:
        """The upload's parts stored so far, by number; `ApiError` 404 once it is gone, 409
        once it is completed."""
        listed = await self._call("GET", f"{MULTIPART}/{upload.upload_id}", params=upload.query)
        return {p["PartNumber"]: StoredPart(p["Size"], p["ETag"]) for p in listed}

    async def sign_parts(self, upload: Multipart, numbers: Sequence[int]) -> dict[int, str]:
        """Presigned PUT URLs for these parts of the upload."""
        params = {**upload.query, "partNumbers": ",".join(map(str, numbers))}
        signed = await self._call("GET", f"{MULTIPART}/{upload.upload_id}/batch", params=params)
        return {int(number): url for number, url in signed["presignedUrls"].items()}

    async def put_part(
        self,
        url: str,
        path: Path,
        offset: int,
        size: int,
        sent: Callable[[int], object] = lambda _: None,
    ) -> str:
        """Stream `size` bytes of `path` from `offset` to a part URL; the part's ETag."""
        fh = await asyncio.to_thread(path.open, "rb")
        with fh:
            await asyncio.to_thread(fh.seek, offset)
            etag = (await self._put(url, fh, size, {}, sent)).get(hdrs.ETAG)
        if not etag:
            raise ApiError(f"storage stored a part of {path.name} but named it with no ETag")
        return etag

    async def complete_multipart(self, upload: Multipart, etags: Mapping[int, str]) -> None:
        """Assemble the parts, named by number and ETag, into the upload's object."""
        parts = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        path = f"{MULTIPART}/{upload.upload_id}/complete"
        await self._call("POST", path, params=upload.query, json={"parts": parts})

    async def _put(
        self,
        url: str,
        fh: BinaryIO,
        size: int,
        headers: Mapping[str, str],
        sent: Callable[[int], object],
    ) -> Mapping[str, str]:
        """PUT `size` bytes of `fh` to a signed URL; the headers of its (successful) answer,
        looked up in any case."""
        # An explicit length: S3 refuses chunked bodies on presigned PUTs. No Authorization
        # header either: the URL carries its own signature, and S3 refuses a second one.
        headers = {**headers, hdrs.CONTENT_LENGTH: str(size)}
        body = _read_chunks(fh, size, sent)
        with _transport_errors(str(URL(url).origin())):
            # As signed: re-quoting the URL would break its signature.
            target = URL(url, encoded=True)
            async with self.session.put(target, data=body, headers=headers) as response:
                await _raise_for_status(response)
                return response.headers

    async def confirm(
        self,
        key: str,
        title: str,
        description: str = "",
        visibility: str = "public",
        transcode: list[str] | None = None,
    ) -> dict[str, Any]:
        """Record an uploaded key as a video; with `transcode`, the video's `jobId` is set."""
        body = {
            "s3Key": key,
            "title": title,
            "description": description,
            "visibility": visibility,
            "transcode": transcode or None,
        }
        video: dict[str, Any] = await self._call("POST", "/api/upload/confirm", json=body)
        return video

    async def jobs(
        self, status: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        """The caller's newest jobs (at most `limit`), and how many there are in all."""
        params: dict[str, str | int] = {"limit": limit}
        if status:
            params["status"] = status
        body = await self._call("GET", "/api/jobs", params=params)
        return body["jobs"], body["pagination"]["total"]

    async def job(self, job_id: int) -> dict[str, Any]:
        """One of the caller's jobs."""
        body = await self._call("GET", f"/api/jobs/{job_id}")
        job: dict[str, Any] = body["job"]
        return job

    async def follow_job(self, job_id: int) -> AsyncIterator[JobEvent]:
        """The job's state now, then each change, up to and including a final status."""
        headers = {**self._auth(), hdrs.ACCEPT: "text/event-stream"}
        with _transport_errors(self.server):
            url = self.server + f"/api/jobs/{job_id}/events"
            async with self.session.get(url, headers=headers) as response:
                await _raise_for_status(response)
                async for event in read_events(response.content):
                    yield event
                    if event.is_final:
                        return
        raise ApiError(f"the event stream of job {job_id} ended before the job did")

    def watch_url(self, video_id: int) -> str:
        """The video's watch page."""
        return f"{self.server}/videos/{video_id}"

    def _auth(self) -> dict[str, str]:
        return {hdrs.AUTHORIZATION: f"Bearer {self.token}"}

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One JSON API call; a status of 300 or more raises the server's message."""
        with _transport_errors(self.server):
            url = self.server + path
            async with self.session.request(
                method, url, headers=self._auth(), **kwargs
            ) as response:
                await _raise_for_status(response)
                return await response.json()


async def read_events(lines: AsyncIterable[bytes]) -> AsyncIterator[JobEvent]:
    """Parse a text/event-stream of jobs: `event:` and `data:` fields, a blank line after each;
    comment lines (the server's keep-alives) are skipped."""
    kind = "message"
    data: list[str] = []
    async for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield JobEvent(kind, json.loads("\n".join(data)))
            kind, data = "message", []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)


async def _read_chunks(
    fh: BinaryIO, size: int, sent: Callable[[int], object]
) -> AsyncIterator[bytes]:
    """Exactly `size` bytes of `fh`: the length was declared, so a file that shrank is an error."""
    left = size
    while left:
        chunk = await asyncio.to_thread(fh.read, min(CHUNK_BYTES, left))
        if not chunk:
            raise ApiError(f"{fh.name} shrank by {left} bytes during the upload")
        yield chunk
        sent(len(chunk))
        left -= len(chunk)


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 300:
        return
    text = await response.text(errors="replace")
    raise ApiError(
        error_message(text) or f"HTTP {response.status} {response.reason}", response.status
    )


def error_message(body: str) -> str | None:
    """The message in an error body: ours is `{"error": ...}`, S3's is XML with a `<Message>`."""
    with contextlib.suppress(ValueError, AttributeError):  # not JSON, or not an object
        error = json.loads(body).get("error")
        if isinstance(error, str):
            return error
    match = _S3_MESSAGE.search(body)
    return html.unescape(match[1].strip()) if match else None


@contextlib.contextmanager
def _transport_errors(peer: str) -> Iterator[None]:
    """A connection that failed or stalled becomes an `ApiError` naming the peer."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        if isinstance(exc.__cause__, ApiError):  # ours, raised while aiohttp read the body
            raise exc.__cause__ from None
        raise ApiError(f"cannot talk to {peer}: {exc or type(exc).__name__}") from exc
