"""`videoforge upload` of a large file: a multipart upload, its parts PUT straight to storage a
few at a time, resumed by the next run after an interruption (it sends the missing parts only)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from videoforge.client.api import ApiError, Multipart, StoredPart, VideoforgeClient
from videoforge.client.resume import ResumeFile, ResumeState
from videoforge.storage.multipart import MAX_PARTS, MIN_PART_BYTES, MiB

THRESHOLD = 64 * MiB  # as the upload page's storage.multipart_threshold
PART_SIZE = 16 * MiB
CONCURRENT_PARTS = 4
# URLs are signed a few parts ahead, not all at once: a URL signed hours before its part
# goes up would have expired.
SIGN_AHEAD = 16


@dataclass(frozen=True)
class Part:
    """One part of the file: its number (from 1), where it starts and how long it is."""

    number: int
    offset: int
    size: int


def part_size_for(size: int, preferred: int = PART_SIZE) -> int:
    """`preferred`, at least S3's minimum, enlarged (to whole MiB) so that at most
    `MAX_PARTS` parts hold `size` bytes."""
    needed = -(-size // MAX_PARTS)
    return max(preferred, MIN_PART_BYTES, -(-needed // MiB) * MiB)


def plan_parts(size: int, part_size: int) -> list[Part]:
    """The parts of a file of `size` bytes cut into `part_size` pieces, the last one shorter."""
    return [
        Part(number, offset, min(part_size, size - offset))
        for number, offset in enumerate(range(0, size, part_size), start=1)
    ]


def missing_parts(parts: Sequence[Part], stored: dict[int, StoredPart]) -> list[Part]:
    """The parts to send: those not stored, or stored with another size than they should have."""
    return [p for p in parts if p.number not in stored or stored[p.number].size != p.size]


async def upload_multipart(
    api: VideoforgeClient,
    path: Path,
    size: int,
    content_type: str,
    resume: ResumeFile,
    part_size: int,
    open_bar: Callable[[int], Callable[[int], object]],
) -> str:
    """Upload `path` (`size` bytes) in parts, resuming the upload `resume` names if the server
    still has it; `open_bar(bytes already stored)` gives the progress callback. The key to
    confirm."""
    state, stored = await _resumed(api, resume)
    if state is not None and state.completed:
        return state.upload.key  # an earlier run got as far as the confirm
    if state is None:
        upload = await api.start_multipart(path.name, content_type, size)
        state = ResumeState(upload, part_size_for(size, part_size))
        resume.save(state)
    parts = plan_parts(size, state.part_size)
    todo = missing_parts(parts, stored)
    etags = {n: stored[n].etag for n in {p.number for p in parts} - {p.number for p in todo}}
    sent = open_bar(size - sum(part.size for part in todo))
    etags.update(await _send_parts(api, path, state.upload, todo, sent))
    await api.complete_multipart(state.upload, etags)
    # Kept until the confirm succeeds: a run stopped between the two only confirms.
    resume.save(dataclasses.replace(state, completed=True))
    return state.upload.key


async def _resumed(
    api: VideoforgeClient, resume: ResumeFile
) -> tuple[ResumeState | None, dict[int, StoredPart]]:
    """The saved upload and its stored parts; none if there is none, or the server lost it."""
    state = resume.load()
    if state is None or state.completed:
        return state, {}
    try:
        return state, await api.stored_parts(state.upload)
    except ApiError as exc:
        if exc.status == 409:  # completed by an earlier run whose answer was lost
            return dataclasses.replace(state, completed=True), {}
        if exc.status != 404:  # aborted or swept: start afresh
            raise
    resume.forget()
    return None, {}


async def _send_parts(
    api: VideoforgeClient,
    path: Path,
    upload: Multipart,
    parts: Sequence[Part],
    sent: Callable[[int], object],
) -> dict[int, str]:
    """PUT the parts, `CONCURRENT_PARTS` at a time; their ETags by number. The first failure
    stops the others: what is stored stays for the next run."""
    urls = _PartUrls(api, upload, parts)
    queue = iter(parts)
    etags: dict[int, str] = {}

    async def stream() -> None:
        for part in queue:  # shared: each part goes to the first stream free
            url = await urls.url(part.number)
            etags[part.number] = await api.put_part(url, path, part.offset, part.size, sent)

    try:
        async with asyncio.TaskGroup() as streams:
            for _ in range(min(CONCURRENT_PARTS, len(parts))):
                streams.create_task(stream())
    except BaseExceptionGroup as group:
        raise _first(group) from None
    return etags


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report of several streams': the first, an `ApiError` if any is."""
    errors = list(_leaves(group))
    return next((e for e in errors if isinstance(e, ApiError)), errors[0])


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


class _PartUrls:
    """Presigned part URLs, signed in batches of `SIGN_AHEAD` in the order parts go up."""

    def __init__(self, api: VideoforgeClient, upload: Multipart, parts: Sequence[Part]) -> None:
        self.api = api
        self.upload = upload
        self.order = [part.number for part in parts]
        self.signed: dict[int, str] = {}
        self.lock = asyncio.Lock()

    async def url(self, number: int) -> str:
        async with self.lock:  # one batch at a time: the streams wait for the same one
            if number not in self.signed:
                start = self.order.index(number)
                batch = self.order[start : start + SIGN_AHEAD]
                self.signed.update(await self.api.sign_parts(self.upload, batch))
            return self.signed.pop(number)
