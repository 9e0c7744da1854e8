"""Where ffmpeg reads a source from: a local file, or an object in storage over HTTP(S).

A chunk needs only its time range of the source: a worker that did not download the whole file
reads that range over a presigned URL (ffmpeg seeks with HTTP range requests), and the object
must still be the version that was confirmed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# What each scheme's ffmpeg protocol opens beneath it, and nothing else: no file, pipe, subfile,
# data, concat or crypto, whatever a URL, a redirect or the bytes behind it name. A redirect
# never changes the protocol: ffmpeg's http follows it as HTTP, to the host it names.
PROTOCOLS = {"http": "http,tcp", "https": "https,tls,tcp"}
# One range request that sends nothing for this long is given up, and reconnected.
READ_TIMEOUT_US = 15_000_000
# ffmpeg waits 0, 1 and 3 s between tries (each wait is 1 + twice the last) while the wait stays
# under this: a network or a store that has not come back by then fails the chunk, whose own
# retry is a fresh start on maybe another worker.
RECONNECT_DELAY_MAX_S = 5
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class RemoteSource:
    """An object ffmpeg reads over HTTP(S): a presigned GET URL, and the ETag it must still have."""

    url: str
    etag: str | None = None

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in PROTOCOLS or _UNSAFE.search(self.url):
            raise ValueError("A remote source is an http(s) URL")
        if self.etag is not None and (not self.etag or _UNSAFE.search(self.etag)):
            raise ValueError("An ETag is one printable token")

    @property
    def protocols(self) -> str:
        """The `-protocol_whitelist` of this URL: its own scheme's protocols only."""
        return PROTOCOLS[urlsplit(self.url).scheme]


Source = Path | RemoteSource


def http_input_options(source: RemoteSource) -> list[str]:
    """The input options (before `-i`) that read `source` over a flaky network, its version only."""
    options = ["-reconnect", "1", "-reconnect_on_network_error", "1"]
    # 5xx: S3's SlowDown and InternalError ask for another try. Never a 4xx: a 412 is the answer.
    options += ["-reconnect_on_http_error", "5xx"]
    options += ["-reconnect_delay_max", str(RECONNECT_DELAY_MAX_S)]
    options += ["-rw_timeout", str(READ_TIMEOUT_US)]
    if source.url.startswith("https:"):
        # ffmpeg's own default is not to check: the URL is a credential and the bytes an input.
        options += ["-tls_verify", "1"]
    if source.etag is not None:
        # Sent with every request ffmpeg makes, each seek's and each reconnection's included:
        # an object replaced since its version was recorded answers 412, never other bytes.
        options += ["-headers", f"If-Match: {source.etag}\r\n"]
    # A read that fails after the input opened (a 412 on a seek, a network that did not come
    # back) otherwise ends the input as if at its end: ffmpeg would exit 0 with part of a chunk.
    # The price: a damaged packet or frame, which a read from a file conceals, fails the run.
    # An ffmpeg option (global, not ffprobe's), so these are ffmpeg's input options only.
    options.append("-xerror")
    return options
