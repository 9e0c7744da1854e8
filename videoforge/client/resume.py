"""Where an interrupted multipart upload resumes from: a small JSON file per upload under the
user's cache directory, named after the file (its absolute path, size and mtime) and the server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from videoforge.client.api import Multipart


@dataclass(frozen=True)
class ResumeState:
    """The upload a file is going up in, and the part size it was cut into."""

    upload: Multipart
    part_size: int
    completed: bool = False  # every part is in the object: only the confirm is left


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CACHE_HOME/videoforge/uploads`, else `~/.cache/videoforge/uploads`."""
    environ = os.environ if environ is None else environ
    # The XDG spec: a relative path is invalid, and is ignored.
    base = environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "videoforge" / "uploads"


class ResumeFile:
    """The state file of one file's upload to one server: another size or mtime, another file."""

    def __init__(self, directory: Path, server: str, path: Path) -> None:
        stat = path.stat()
        identity = [server, str(path.absolute()), stat.st_size, stat.st_mtime_ns]
        digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
        self.path = directory / f"{digest[:32]}.json"

    def load(self) -> ResumeState | None:
        """The state saved by an earlier run, if any (one that cannot be read is none)."""
        try:
            saved = json.loads(self.path.read_text())
            upload = Multipart(saved["key"], saved["uploadId"])
            return ResumeState(upload, int(saved["partSize"]), saved.get("completed") is True)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, state: ResumeState) -> None:
        """Write the state atomically (a temp file renamed over it), readable by the user only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"key": state.upload.key, "uploadId": state.upload.upload_id}
        text = json.dumps({**body, "partSize": state.part_size, "completed": state.completed})
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:  # mkstemp makes it 0600
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def forget(self) -> None:
        """Drop the state: the upload is confirmed, or gone."""
        self.path.unlink(missing_ok=True)
