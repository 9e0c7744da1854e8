"""HLS, captions and storyboards through signed URLs, on any storage backend.

The app serves the playlists itself, under a short-lived token naming the job, so relative
playlist URIs keep working; every segment and init file inside them is rewritten to a signed
storage URL (an HMAC-signed local URL or an S3 presigned one). The storyboard's WebVTT index is
served the same way, its sprites signed; caption tracks come from the app under tokens of their
own, and the master playlist names them as subtitles renditions.
"""

from __future__ import annotations

import math
import posixpath
import re
import time
from collections import Counter
from collections.abc import Sequence
from urllib.parse import quote

from videoforge.config import Config
from videoforge.errors import Forbidden, NotFound
from videoforge.storage.base import Storage
from videoforge.storage.layout import OutputLayout
from videoforge.storage.signing import UrlSigner
from videoforge.storage.validation import validate_key
from videoforge.support.digits import parse_digits
from videoforge.support.secretfile import server_secret

_MAP_URI = re.compile(r'URI="([^"]+)"')
SUBTITLES_GROUP = "subs"
SUBTITLES_DIR = "subs/"  # generated playlists, one per caption track: nothing in storage
# A quoted-string attribute (NAME) holds no double quote, CR or LF (RFC 8216, 4.2).
_UNQUOTABLE = re.compile(r'["\r\n]')


class TokenSigner:
    """Issues and checks `{id}.{expires}.{signature}` tokens granting one row (a job, a video)
    for one purpose: the scope is signed too, so a token of one scope is none of another's."""

    def __init__(self, config: Config, scope: str) -> None:
        self._signer = UrlSigner(server_secret(config))
        self.scope = scope

    def issue(self, subject: int, ttl: int) -> str:
        expires = int(time.time()) + ttl
        return f"{subject}.{expires}.{self._signer.sign(self.scope, str(subject), expires)}"

    def verify(self, token: str) -> int:
        """The id the token grants, or Forbidden."""
        subject, _, rest = token.partition(".")
        expires, _, signature = rest.partition(".")
        subject_id = parse_digits(subject)
        if subject_id is None:
            raise Forbidden("Invalid or missing URL signature")
        self._signer.verify(self.scope, subject, expires, signature)
        return subject_id


class PlaylistSigner:
    """Issues and checks tokens for a job's HLS directory."""

    def __init__(self, config: Config) -> None:
        self._tokens = TokenSigner(config, "HLS")
        self.base_url = config.server.base_url

    def master_url(self, job_id: int, ttl: int) -> str:
        """The signed URL of the job's master playlist: what a player is given."""
        return self.playlist_url(job_id, OutputLayout(job_id).master_playlist, ttl)

    def playlist_url(self, job_id: int, key: str, ttl: int) -> str:
        """The signed URL of one playlist of the job's HLS directory (`key` must be in it)."""
        path = key.removeprefix(OutputLayout(job_id).hls_prefix)
        if path == key:
            raise NotFound()
        playlist_key(job_id, path)  # what the HLS route would refuse is never signed
        return f"{self.base_url}/api/hls/{self._tokens.issue(job_id, ttl)}/{quote(path)}"

    def verify(self, token: str) -> int:
        """The job id the token grants, or Forbidden."""
        return self._tokens.verify(token)


def is_growing(playlist: str) -> bool:
    """Whether a playlist is an EVENT playlist not yet ended: more segments are to come."""
    return "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist


def playlist_key(job_id: int, path: str) -> str:
    """The storage key of a playlist under the job's HLS directory (nothing outside it)."""
    if not path.endswith(".m3u8"):
        raise NotFound()
    key = validate_key(OutputLayout(job_id).hls_prefix + path)
    return key


async def sign_playlist(storage: Storage, key: str, text: str, ttl: int) -> str:
    """The playlist with each media URI replaced by a signed URL; playlist URIs stay relative."""
    directory = posixpath.dirname(key)
    layout = OutputLayout.of_key(key)
    if layout is None or not key.startswith(layout.hls_prefix):
        raise NotFound()
    prefix = layout.hls_prefix
    lines = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            match = _MAP_URI.search(line)
            if match:
                url = await _signed(storage, directory, prefix, match.group(1), ttl)
                line = line[: match.start(1)] + url + line[match.end(1) :]
        elif line and not line.startswith("#") and not line.endswith(".m3u8"):
            line = await _signed(storage, directory, prefix, line.strip(), ttl)
        lines.append(line)
    return "\n".join(lines) + "\n"


async def _signed(storage: Storage, directory: str, prefix: str, uri: str, ttl: int) -> str:
    if "://" in uri:
        return uri
    key = posixpath.normpath(posixpath.join(directory, uri))
    if not key.startswith(prefix):
        raise NotFound()
    return await storage.presign_get(validate_key(key), ttl)


def subtitles_language(path: str) -> str | None:
    """The language of a generated subtitles playlist's path (`subs/en.m3u8`), else None."""
    if not path.startswith(SUBTITLES_DIR) or not path.endswith(".m3u8"):
        return None
    return path[len(SUBTITLES_DIR) : -len(".m3u8")]


def with_subtitles(master: str, tracks: Sequence[tuple[str, str]]) -> str:
    """The master playlist offering each (language, label) track as a WebVTT rendition of the
    `subs` group, which every variant names."""
    if not tracks:
        return master
    media = [
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{SUBTITLES_GROUP}",NAME="{name}",'
        f'LANGUAGE="{language}",DEFAULT=NO,AUTOSELECT=YES,URI="{SUBTITLES_DIR}{language}.m3u8"'
        for (language, _), name in zip(tracks, _distinct_names(tracks), strict=True)
    ]
    lines: list[str] = []
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            lines += media
            media = []
            # Last, after the attribute list's quoted values (CODECS holds commas).
            line += f',SUBTITLES="{SUBTITLES_GROUP}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def _distinct_names(tracks: Sequence[tuple[str, str]]) -> list[str]:
    """The tracks' NAMEs, distinct as RFC 8216 requires within a group: a label used more than
    once gets its track's language after it ("English (en-GB)")."""
    names = [_UNQUOTABLE.sub("'", label) for _, label in tracks]
    languages = [language for language, _ in tracks]
    uses = Counter(names)
    # Again while a renamed one meets a label that already read so ("English (en)"). Renamed
    # names end in distinct languages (a tag holds no parenthesis), so what still collides is
    # a label not yet renamed: each pass renames one at least, and the loop ends.
    while len(uses) < len(names):
        renamed = zip(names, languages, strict=True)
        names = [f"{name} ({language})" if uses[name] > 1 else name for name, language in renamed]
        uses = Counter(names)
    return names


def subtitles_playlist(duration: float, caption_url: str) -> str:
    """A VOD playlist of one WebVTT segment, the whole track, as long as the video."""
    return "\n".join(
        [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{max(1, math.ceil(duration))}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-PLAYLIST-TYPE:VOD",
            f"#EXTINF:{duration:.3f},",
            caption_url,
            "#EXT-X-ENDLIST",
            "",
        ]
    )


async def sign_storyboard(storage: Storage, key: str, text: str, ttl: int) -> str:
    """The storyboard's WebVTT with each cue's sprite reference a signed URL, its `#xywh=`
    fragment kept; a reference outside the job's storyboard is refused."""
    layout = OutputLayout.of_key(key)
    if layout is None or key != layout.storyboard:
        raise NotFound()
    directory = posixpath.dirname(key)
    signed: dict[str, str] = {}  # a few sprites, named by many cues: each signed once
    lines = []
    in_cue = False
    for line in text.splitlines():
        if not line.strip():
            in_cue = False
        elif "-->" in line:
            in_cue = True
        elif in_cue:
            reference, hash_sign, fragment = line.strip().partition("#")
            if "://" in reference:
                raise NotFound()  # ours name their sprites only, relative to the index
            if reference not in signed:
                prefix = layout.storyboard_prefix
                signed[reference] = await _signed(storage, directory, prefix, reference, ttl)
            line = signed[reference] + hash_sign + fragment
        lines.append(line)
    return "\n".join(lines) + "\n"
