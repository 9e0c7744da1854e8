"""Local backend: files under `data_dir/storage`, served by the app through signed URLs."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from videoforge.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidKey,
    ObjectNotFound,
    PayloadTooLarge,
    StorageError,
)
from videoforge.storage.base import (
    MAX_PUT_BYTES,
    ObjectInfo,
    ObjectVersion,
    Storage,
    check_presign_args,
)
from videoforge.storage.local_parts import PartStaging
from videoforge.storage.multipart import (
    PendingUpload,
    UploadedPart,
    check_part_number,
    parts_to_assemble,
)
from videoforge.storage.signing import UrlSigner
from videoforge.storage.validation import content_type_for, validate_key, validate_prefix
from videoforge.support.secretfile import load_or_create_secret

MEDIA_PATH = "/media/"
PART_SIGNATURE = "UPLOAD-PART"  # the method a part URL is signed for: no object PUT matches it
STALE_TEMP_SECONDS = 24 * 3600
SEALED_MODE = 0o444  # a sealed object is a read-only file: the mark travels with the file

_Writer = Callable[[BinaryIO], object]


class UploadSealed(Conflict):
    """Upload already confirmed"""


class SizeMismatch(Forbidden):
    """Upload size does not match the signed URL"""


class LocalStorage(Storage):
    """Objects are files under `objects/`; writes land in `tmp/` first and are renamed in.

    Temp files live beside, not inside, the object tree: every name is a valid key segment,
    so no name inside the tree could be reserved for them. There is no metadata store: an
    object's content type is always the one its key's extension implies, and a sealed object
    (see `seal`) is one whose file is read-only.
    """

    def __init__(self, data_dir: Path, base_url: str, max_upload_bytes: int) -> None:
        self.root = data_dir / "storage"
        self.secret_path = data_dir / "storage.secret"
        self.base_url = base_url.rstrip("/")
        self.max_upload_bytes = max_upload_bytes
        self._objects = self.root / "objects"
        self._temp = self.root / "tmp"
        self._lock_path = self.root / "seal.lock"
        self._staging = PartStaging(self.root / "multipart")
        self._signer: UrlSigner | None = None

    @property
    def max_put_bytes(self) -> int:
        """The most one PUT may carry, of an object or of a part: S3's limit, or ours if lower."""
        return min(MAX_PUT_BYTES, self.max_upload_bytes)

    @property
    def signer(self) -> UrlSigner:
        """The URL signer; only after `open`."""
        if self._signer is None:
            raise StorageError("Local storage used before open()")
        return self._signer

    async def open(self) -> None:
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        with _os_errors("prepare local storage at", str(self.root)):
            self._objects.mkdir(parents=True, exist_ok=True)
            self._temp.mkdir(parents=True, exist_ok=True)
            self._staging.prepare()
            # Resolved once, so containment checks compare real paths with a real root.
            self._objects = self._objects.resolve()
            self._temp = self._temp.resolve()
            self._signer = UrlSigner(load_or_create_secret(self.secret_path))
            _sweep_stale(self._temp, STALE_TEMP_SECONDS)

    async def close(self) -> None:
        self._signer = None

    async def presign_put(
        self, key: str, content_type: str, expires_in: int, size: int | None = None
    ) -> str:
        validate_key(key)
        check_presign_args(expires_in, content_type)
        expires = int(time.time()) + expires_in
        signature = self.signer.sign("PUT", key, expires, content_type, size)
        query: dict[str, str | int] = {"expires": expires, "content_type": content_type}
        if size is not None:
            query["size"] = size
        return self._url(key, **query, signature=signature)

    async def presign_get(self, key: str, expires_in: int) -> str:
        validate_key(key)
        check_presign_args(expires_in)
        expires = int(time.time()) + expires_in
        return self._url(key, expires=expires, signature=self.signer.sign("GET", key, expires))

    def _url(self, key: str, **query: str | int) -> str:
        return f"{self.base_url}{MEDIA_PATH}{quote(key, safe='/')}?{urlencode(query)}"

    async def head(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        return await asyncio.to_thread(self._head, key)

    def _head(self, key: str) -> ObjectInfo | None:
        found = self._lookup(key)
        return found[1] if found else None

    def _lookup(self, key: str) -> tuple[Path, ObjectInfo] | None:
        path = self.path_for(key)
        with _os_errors("read", key):
            try:
                st = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
        return (path, _info(key, st)) if stat.S_ISREG(st.st_mode) else None

    async def seal(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        return await asyncio.to_thread(self._seal, key)

    def _seal(self, key: str) -> ObjectInfo | None:
        with self._upload_lock():
            found = self._lookup(key)
            if found is None:
                return None
            path, info = found
            with _os_errors("seal", key):
                path.chmod(SEALED_MODE)  # the mode only: mtime, and so the ETag, stay
            return info

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        validate_key(key)
        return await asyncio.to_thread(self._store, key, lambda fh: fh.write(data))

    async def put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        validate_key(key)

        def copy(fh: BinaryIO) -> None:
            with path.open("rb") as src:
                shutil.copyfileobj(src, fh, 1024 * 1024)

        return await asyncio.to_thread(self._store, key, copy)

    def _store(self, key: str, write: _Writer) -> ObjectInfo:
        """Write through a temp file, then rename into place: readers never see half a file."""
        target = self.path_for(key)
        temp = self._new_temp()
        try:
            with temp.open("wb") as fh:
                write(fh)
                _sync(fh)
            return self._install(key, temp, target)
        finally:
            temp.unlink(missing_ok=True)

    async def receive(
        self, key: str, chunks: AsyncIterable[bytes], size: int | None = None
    ) -> ObjectInfo:
        """Stream an upload (a presigned PUT) into place, refusing empty or oversized bodies,
        a body of another length than the signed `size`, and any upload to a sealed object.

        The temp file is removed whatever happens, a client disconnect included: a refused
        upload leaves the object as it was.
        """
        validate_key(key)
        target = await asyncio.to_thread(self.path_for, key)
        if await asyncio.to_thread(_is_sealed, target):
            raise UploadSealed()  # before reading a byte of the body
        temp = await asyncio.to_thread(self._new_temp)
        try:
            with temp.open("wb") as fh:
                received = 0
                async for chunk in chunks:
                    received += len(chunk)
                    self._check_received(received, size)
                    await asyncio.to_thread(fh.write, chunk)
                if received == 0:
                    raise BadRequest("Empty upload")
                if size is not None and received != size:
                    raise SizeMismatch()
                await asyncio.to_thread(_sync, fh)
            return await asyncio.to_thread(self._install_upload, key, temp, target)
        finally:
            temp.unlink(missing_ok=True)

    def _check_received(self, received: int, size: int | None) -> None:
        if received > self.max_put_bytes:
            raise PayloadTooLarge(f"Upload larger than {self.max_put_bytes} bytes")
        if size is not None and received > size:
            raise SizeMismatch()

    def _install_upload(self, key: str, temp: Path, target: Path) -> ObjectInfo:
        # Checked again under the lock `seal` takes: an upload still streaming when its object
        # was confirmed must not replace the object after all.
        with self._upload_lock():
            if _is_sealed(target):
                raise UploadSealed()
            return self._install(key, temp, target)

    @contextlib.contextmanager
    def _upload_lock(self) -> Iterator[None]:
        """Held while sealing and while an upload replaces an object, across every process
        sharing the store (an open file of its own each time: flock locks belong to it)."""
        with _os_errors("lock", str(self._lock_path)):
            lock = self._lock_path.open("ab")
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    # --- multipart uploads -------------------------------------------------------------------

    async def _create_multipart(self, key: str, content_type: str) -> str:
        # No metadata store: the object's type is its extension's, as for a single PUT.
        await asyncio.to_thread(self.path_for, key)  # refuse a key outside the tree now
        with _os_errors("start a multipart upload of", key):
            return await asyncio.to_thread(self._staging.create, key)

    async def _presign_part(
        self, key: str, upload_id: str, part_number: int, expires_in: int
    ) -> str:
        expires = int(time.time()) + expires_in
        signature = self.signer.sign(
            PART_SIGNATURE, key, expires, part_scope(upload_id, part_number)
        )
        query: dict[str, str | int] = {"uploadId": upload_id, "partNumber": part_number}
        return self._url(key, **query, expires=expires, signature=signature)

    async def receive_part(
        self, key: str, upload_id: str, number: int, chunks: AsyncIterable[bytes]
    ) -> UploadedPart:
        """Stream one part (a PUT to a part URL) into the upload's staging directory; the
        temp file goes whatever happens, and the part lands only once it is whole."""
        validate_key(key)
        check_part_number(number)
        with _os_errors("receive a part of", key):
            others = await asyncio.to_thread(self._staging.parts, key, upload_id)
            temp, fh = await asyncio.to_thread(self._staging.new_part_file, key, upload_id)
        # The staging dir never holds more than one upload may be: S3's cap on a part, and
        # what is left of ours once the other parts are counted.
        staged = sum(part.size for part in others if part.number != number)
        limit = min(self.max_put_bytes, self.max_upload_bytes - staged)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            received = 0
            with fh:
                async for chunk in chunks:
                    received += len(chunk)
                    if received > limit:
                        raise PayloadTooLarge(f"Part larger than {max(limit, 0)} bytes")
                    await asyncio.to_thread(_write_hashed, fh, digest, chunk)
                await asyncio.to_thread(_sync, fh)
            md5 = digest.hexdigest()
            with _os_errors("store a part of", key):
                await asyncio.to_thread(
                    self._staging.land_part,
                    key,
                    upload_id,
                    number,
                    temp,
                    md5,
                    self.max_upload_bytes,
                )
            return UploadedPart(number, received, f'"{md5}"')
        finally:
            temp.unlink(missing_ok=True)

    async def _list_parts(self, key: str, upload_id: str) -> tuple[UploadedPart, ...]:
        with _os_errors("list the parts of", key):
            return await asyncio.to_thread(self._staging.parts, key, upload_id)

    async def _complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> ObjectInfo:
        target = await asyncio.to_thread(self.path_for, key)
        return await asyncio.to_thread(self._assemble, key, upload_id, parts, target)

    def _assemble(
        self, key: str, upload_id: str, requested: Sequence[tuple[int, str]], target: Path
    ) -> ObjectInfo:
        """Concatenate the parts into a temp file and rename it into place, all under the
        upload's lock (no part changes meanwhile): a crash leaves the parts or the object."""
        with self._staging.locked(key, upload_id) as directory:
            chosen = parts_to_assemble(requested, self._staging.parts(key, upload_id))
            temp = self._new_temp()
            try:
                with _os_errors("assemble", key), temp.open("wb") as out:
                    for part in chosen:
                        with self._staging.part_path(upload_id, part).open("rb") as src:
                            _append(src, out, part.size)
                    _sync(out)
                info = self._install_upload(key, temp, target)
            finally:
                temp.unlink(missing_ok=True)
            with _os_errors("clean up the parts of", key):
                self._staging.remove(directory)
            return info

    async def _abort_multipart(self, key: str, upload_id: str) -> None:
        await asyncio.to_thread(self._abort, key, upload_id)

    def _abort(self, key: str, upload_id: str) -> None:
        with self._staging.locked(key, upload_id) as directory, _os_errors("abort", key):
            self._staging.remove(directory)

    async def pending_uploads(self) -> AsyncIterator[PendingUpload]:
        with _os_errors("list multipart uploads in", str(self.root)):
            pending = await asyncio.to_thread(self._staging.pending)
        for upload in pending:
            yield upload

    async def read_bytes(self, key: str, max_bytes: int = 16 * 1024 * 1024) -> bytes:
        path, info = await self.open_file(key)
        if info.size > max_bytes:
            raise StorageError(f"Object too large to read into memory: {key}")
        return await asyncio.to_thread(path.read_bytes)

    async def get_file(self, key: str, dest: Path, version: ObjectVersion | None = None) -> None:
        validate_key(key)
        await asyncio.to_thread(self._get_file, key, dest, version)

    def _get_file(self, key: str, dest: Path, version: ObjectVersion | None) -> None:
        source = self.path_for(key)
        partial = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.part")
        try:
            try:
                with source.open("rb") as src:
                    if version is not None:  # checks the open file: the one that is copied
                        st = os.fstat(src.fileno())
                        version.check(st.st_size, _etag(st))
                    with partial.open("wb") as out:
                        shutil.copyfileobj(src, out, 1024 * 1024)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                if source.is_file():
                    raise  # the destination is at fault, not the object
                raise ObjectNotFound(f"Object not found: {key}") from None
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)

    async def open_file(self, key: str) -> tuple[Path, ObjectInfo]:
        """The file behind an existing object, for serving it; `ObjectNotFound` if missing."""
        validate_key(key)
        found = await asyncio.to_thread(self._lookup, key)
        if found is None:
            raise ObjectNotFound(f"Object not found: {key}")
        return found

    async def local_path(self, key: str) -> Path | None:
        validate_key(key)
        found = await asyncio.to_thread(self._lookup, key)
        return found[0] if found else None

    async def delete(self, key: str) -> None:
        validate_key(key)
        await asyncio.to_thread(self._delete, key)

    def _delete(self, key: str) -> None:
        path = self.path_for(key)
        with _os_errors("delete", key):
            try:
                path.unlink(missing_ok=True)
            except (IsADirectoryError, NotADirectoryError):
                return  # a "directory" is not an object: nothing to delete
        # S3 has no directories; pruning empty ones keeps `a` storable after `a/b` is gone.
        parent = path.parent
        while parent != self._objects:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        validate_prefix(prefix)
        for info in await asyncio.to_thread(self._scan, prefix):
            yield info

    def _scan(self, prefix: str) -> tuple[ObjectInfo, ...]:
        directory = prefix.rpartition("/")[0]
        base = self.path_for(directory) if directory else self._objects
        found = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                path = Path(dirpath, name)
                key = path.relative_to(self._objects).as_posix()
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = path.lstat()
                    if stat.S_ISREG(st.st_mode):
                        found.append(_info(key, st))
        # S3 lists in UTF-8 byte order; match it so callers see one order.
        return tuple(sorted(found, key=lambda info: info.key.encode("utf-8")))

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        try:
            temp = self._new_temp()
            temp.unlink()
        except (OSError, StorageError) as exc:
            raise StorageError(f"Local storage at {self.root} is not writable: {exc}") from None
        if self._signer is None:
            raise StorageError("Local storage is not open")

    def path_for(self, key: str) -> Path:
        """The real path of `key`, refused if it would leave the object tree (symlinks too)."""
        validate_key(key)
        if self._signer is None:
            raise StorageError("Local storage used before open()")
        path = (self._objects / key).resolve()
        if path == self._objects or not path.is_relative_to(self._objects):
            raise InvalidKey("Invalid storage key: resolves outside the storage root")
        return path

    def _new_temp(self) -> Path:
        with _os_errors("create a temp file in", str(self._temp)):
            fd, name = tempfile.mkstemp(dir=self._temp, prefix="upload-")
        os.close(fd)
        return Path(name)

    def _install(self, key: str, temp: Path, target: Path) -> ObjectInfo:
        with _os_errors("store", key):
            for attempt in range(3):
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    temp.replace(target)
                    break
                except FileNotFoundError:
                    # A concurrent delete pruned the parent we just made: make it again.
                    if attempt == 2:
                        raise
            return _info(key, target.stat())


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    return ObjectInfo(key, st.st_size, content_type_for(key), modified, _etag(st))


def _etag(st: os.stat_result) -> str:
    """Every write installs a new file, with its own nanosecond mtime; a copy of the store that
    keeps mtimes (cp -a, rsync -a, tar) keeps the ETags."""
    return f"{st.st_mtime_ns:x}-{st.st_size:x}"


def _is_sealed(path: Path) -> bool:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return stat.S_ISREG(st.st_mode) and not st.st_mode & stat.S_IWUSR


def part_scope(upload_id: str, part_number: int) -> str:
    """What a part URL's signature binds besides the key and expiry."""
    return f"{upload_id}/{part_number}"


def _append(src: BinaryIO, out: BinaryIO, size: int) -> None:
    """Copy `size` bytes of `src` to the end of `out` inside the kernel (a reflink, where the
    file system has them); by reading and writing where it cannot."""
    out.flush()  # the kernel copies at the file's own offset: nothing may wait in a buffer
    copied = 0
    # OSError: another file system, or a kernel without it; AttributeError: not Linux.
    with contextlib.suppress(OSError, AttributeError):
        while copied < size:
            done = os.copy_file_range(src.fileno(), out.fileno(), size - copied)
            if done == 0:
                break
            copied += done
    src.seek(copied)
    out.seek(0, os.SEEK_END)
    shutil.copyfileobj(src, out, 1024 * 1024)


def _write_hashed(fh: BinaryIO, digest: hashlib._Hash, chunk: bytes) -> None:
    digest.update(chunk)  # in the thread too: hashlib lets go of the GIL for large chunks
    fh.write(chunk)


def _sync(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _sweep_stale(directory: Path, max_age: float) -> None:
    """Remove temp files a crashed process left behind (old enough to be nobody's upload)."""
    cutoff = time.time() - max_age
    for entry in os.scandir(directory):
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)


@contextlib.contextmanager
def _os_errors(action: str, subject: str) -> Iterator[None]:
    """Turn file-system failures into `StorageError` naming what was being done."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"Cannot {action} {subject}: {exc.strerror or exc}") from None
