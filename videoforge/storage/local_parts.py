"""The local backend's multipart uploads: one staging directory per upload, beside the objects.

`multipart/{uploadId}/upload.json` names the key; each part is `{number:05d}-{md5}.part`, so a
listing needs no other record and a part replaced by a later PUT of the same number is one
rename. Everything that changes a directory (a part landing, completion, abort) holds the flock
of its `upload.json`, across every process sharing the store (a part's temp file is made
without it: it lands, or not, under the lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from videoforge.errors import PayloadTooLarge, StorageError
from videoforge.storage.multipart import PendingUpload, UploadedPart, UploadNotFound, unquoted

META = "upload.json"
_LOCAL_ID = re.compile(r"[0-9a-f]{32}")
_PART = re.compile(r"([0-9]{5})-([0-9a-f]{32})\.part")


class PartStaging:
    """Staging directories under `root`; every method is blocking (call it in a thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def create(self, key: str) -> str:
        upload_id = secrets.token_hex(16)
        directory = self.root / upload_id
        directory.mkdir()
        meta = {"key": key, "started": datetime.now(UTC).isoformat()}
        (directory / META).write_text(json.dumps(meta))
        return upload_id

    def new_part_file(self, key: str, upload_id: str) -> tuple[Path, BinaryIO]:
        """A temp file inside the upload's directory (so it lands by rename), open for writing."""
        directory = self._directory(key, upload_id)
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=".part-")
        except FileNotFoundError:
            raise UploadNotFound() from None  # aborted or completed meanwhile
        return Path(name), os.fdopen(fd, "wb")

    def land_part(
        self, key: str, upload_id: str, number: int, temp: Path, md5: str, max_total: int
    ) -> None:
        """Install a received part, replacing any earlier one of the same number, unless the
        upload's parts would then hold more than `max_total` bytes (checked under the lock:
        parts arriving side by side are counted together)."""
        with self.locked(key, upload_id) as directory:
            others = sum(p.size for p in _parts_in(directory) if p.number != number)
            if others + temp.stat().st_size > max_total:
                raise PayloadTooLarge(f"Part larger than {max(max_total - others, 0)} bytes")
            for old in directory.glob(f"{number:05d}-*.part"):
                old.unlink()
            temp.replace(directory / f"{number:05d}-{md5}.part")

    def parts(self, key: str, upload_id: str) -> tuple[UploadedPart, ...]:
        return _parts_in(self._directory(key, upload_id))

    def part_path(self, upload_id: str, part: UploadedPart) -> Path:
        return self.root / upload_id / f"{part.number:05d}-{unquoted(part.etag)}.part"

    def remove(self, directory: Path) -> None:
        """Take the directory out of sight first (one rename), then delete it at leisure."""
        gone = self.root / f".gone-{directory.name}-{secrets.token_hex(4)}"
        directory.replace(gone)
        shutil.rmtree(gone, ignore_errors=True)

    @contextlib.contextmanager
    def locked(self, key: str, upload_id: str) -> Iterator[Path]:
        """The upload's directory, held against every other change; `UploadNotFound` if it is
        gone, even if it went while this waited for the lock."""
        directory = self._directory(key, upload_id)
        try:
            lock = (directory / META).open("rb")
        except FileNotFoundError:
            raise UploadNotFound() from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (directory / META).exists():
                raise UploadNotFound()
            yield directory

    def pending(self) -> list[PendingUpload]:
        found = []
        for directory in sorted(self.root.iterdir()):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                if _LOCAL_ID.fullmatch(directory.name):
                    meta = json.loads((directory / META).read_text())
                    size = sum(part.size for part in _parts_in(directory))
                    started = datetime.fromisoformat(meta["started"])
                    found.append(PendingUpload(meta["key"], directory.name, started, size))
        return found

    def _directory(self, key: str, upload_id: str) -> Path:
        """The directory of an upload to `key`: another key's upload is no upload of this one."""
        if not _LOCAL_ID.fullmatch(upload_id):
            raise UploadNotFound()
        directory = self.root / upload_id
        try:
            meta = json.loads((directory / META).read_text())
        except (FileNotFoundError, NotADirectoryError):
            raise UploadNotFound() from None
        except (OSError, ValueError) as exc:
            raise StorageError(f"Cannot read multipart upload {upload_id}: {exc}") from None
        if not isinstance(meta, dict) or meta.get("key") != key:
            raise UploadNotFound()
        return directory


def _parts_in(directory: Path) -> tuple[UploadedPart, ...]:
    parts = []
    for entry in os.scandir(directory):
        match = _PART.fullmatch(entry.name)
        if match:
            with contextlib.suppress(FileNotFoundError):
                size = entry.stat().st_size
                parts.append(UploadedPart(int(match[1]), size, f'"{match[2]}"'))
    return tuple(sorted(parts, key=lambda part: part.number))
