"""A chunk's source read in place or over a presigned URL (real SeaweedFS, real ffmpeg).

Over the URL, a chunk is the same as from the file, ffmpeg reads only about its share of the
object, every request asks for the recorded version only, and nothing but HTTP(S) is opened.
The clip: 30 s at 480p with a keyframe every 2 s; the chunk: its middle fifth, 12 s to 18 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from yarl import URL

from tests.fixtures.s3 import S3Server
from tests.media import Media, media_library
from tests.storage_support import ServerFactory
from videoforge.jobs.sources import chunk_source
from videoforge.storage import ObjectChanged, Storage
from videoforge.transcode.chunks import ChunkLayout, build_chunk_command, plan_chunks
from videoforge.transcode.ladder import plan_ladder
from videoforge.transcode.probe import MediaInfo, input_args, probe
from videoforge.transcode.runner import TranscodeFailed, run_capture, run_ffmpeg
from videoforge.transcode.source import RemoteSource, Source

SECONDS = 30
FPS = 25
CHUNK = plan_chunks(SECONDS, 6)[2]
QUALITIES = ("low",)
KEY = "videos/source/clip.mp4"
URL_TTL = 600
S3_ONLY = pytest.mark.parametrize("storage_settings", ["s3"], indirect=True)
# Headers the proxy passes on each way; the signature covers only the host, which it keeps.
REQUEST_HEADERS = ("Range", "If-Match", "User-Agent")
RESPONSE_HEADERS = (
    "Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified",
)  # fmt: skip


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    return media_library(tmp_path_factory)


@pytest.fixture(scope="module")
def clip(media: Media) -> Path:
    """30 s of moving pattern at 854x480 with a tone, a keyframe every 2 s, index at the end."""
    path = media.directory / "remote_source.mp4"
    if not path.exists():
        media.ffmpeg(
            *("-f", "lavfi", "-i", f"testsrc2=size=854x480:rate={FPS}:duration={SECONDS}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-g", str(2 * FPS)),
            *("-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(path)),
        )
    return path


@pytest.fixture(scope="module")
def clip_size(clip: Path) -> int:
    return clip.stat().st_size


@pytest.fixture
async def info(media: Media, clip: Path) -> MediaInfo:
    return await probe(media.binaries.ffprobe, clip)


@pytest.fixture
async def stored(storage: Storage, clip: Path) -> Storage:
    """The storage, with the clip stored under KEY."""
    await storage.put_file(KEY, clip, "video/mp4")
    return storage


async def encode_chunk(media: Media, source: Source, info: MediaInfo, work: Path) -> Path:
    """The chunk's 480p video from `source`, as a chunk task encodes it."""
    layout = ChunkLayout(work)
    layout.chunk_dir(CHUNK).mkdir(parents=True)
    layout.chunk_frames_dir(CHUNK).mkdir(parents=True)  # its storyboard frames go there
    ladder = plan_ladder(info, QUALITIES)
    argv = build_chunk_command(media.binaries.ffmpeg, source, info, ladder, CHUNK, layout)
    await run_ffmpeg(argv, duration=CHUNK.duration, timeout=60)
    return layout.chunk_video(CHUNK, "low")


def video_duration(media: Media, path: Path) -> float:
    streams = media.ffprobe(path, "-select_streams", "v:0", "-show_entries", "stream=duration")
    return float(streams["streams"][0]["duration"])


async def read_one_frame(media: Media, args: list[str]) -> tuple[int, str]:
    """ffmpeg's exit status and stderr for decoding one frame of the input `args` open."""
    argv = [str(media.binaries.ffmpeg), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    argv += ["-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"]
    returncode, _, stderr = await run_capture(argv, timeout=30)
    return returncode, stderr


async def remote(storage: Storage) -> RemoteSource:
    info = await storage.head(KEY)
    assert info is not None
    source = await chunk_source(storage, KEY, info.version, URL_TTL)
    assert isinstance(source, RemoteSource)
    return source


# A counting proxy in front of SeaweedFS


@dataclasses.dataclass
class CountingProxy:
    """Passes GETs on to the S3 server and counts the body bytes it sends back to ffmpeg."""

    upstream: str
    session: aiohttp.ClientSession
    before: Callable[[str], Awaitable[None]] | None = None  # given each request's Range
    sent: int = 0
    requests: list[dict[str, str]] = dataclasses.field(default_factory=list)
    statuses: list[int] = dataclasses.field(default_factory=list)  # the S3 server's answers
    port: int = 0

    def url_of(self, source: RemoteSource) -> RemoteSource:
        """`source` through the proxy: the same signed path and query, another port."""
        assert source.url.startswith(f"{self.upstream}/")
        url = f"http://127.0.0.1:{self.port}{source.url.removeprefix(self.upstream)}"
        return dataclasses.replace(source, url=url)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.before is not None:
            await self.before(request.headers.get("Range", ""))
        headers = {k: v for k, v in request.headers.items() if k in REQUEST_HEADERS}
        target = URL(f"{self.upstream}{request.path_qs}", encoded=True)
        async with self.session.get(target, headers=headers) as answer:
            self.statuses.append(answer.status)
            passed = {k: v for k, v in answer.headers.items() if k in RESPONSE_HEADERS}
            response = web.StreamResponse(status=answer.status, headers=passed)
            # A small send buffer: what ffmpeg leaves unread when it seeks is not counted as read.
            sock = request.transport.get_extra_info("socket") if request.transport else None
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            await response.prepare(request)
            try:
                async for piece in answer.content.iter_chunked(64 * 1024):
                    await response.write(piece)
                    self.sent += len(piece)
            except ConnectionError:
                pass  # ffmpeg seeked elsewhere and hung up
            return response


@pytest.fixture
async def proxy(s3_server: S3Server, aiohttp_server: ServerFactory) -> AsyncIterator[CountingProxy]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        counting = CountingProxy(s3_server.endpoint_url, session)
        app = web.Application()
        app.router.add_get("/{path:.*}", counting.handle)
        server = await aiohttp_server(app)
        assert server.port is not None
        counting.port = server.port
        yield counting


# Over the URL: the same chunk, a share of the bytes, that version only


@S3_ONLY
async def test_chunk_read_over_a_presigned_url_equals_the_chunk_read_from_the_file(
    stored: Storage, media: Media, clip: Path, info: MediaInfo, tmp_path: Path
) -> None:
    over_http = await encode_chunk(media, await remote(stored), info, tmp_path / "remote")
    from_file = await encode_chunk(media, clip, info, tmp_path / "local")
    assert media.frame_count(over_http) == media.frame_count(from_file) == CHUNK.duration * FPS
    duration = video_duration(media, from_file)
    assert video_duration(media, over_http) == pytest.approx(duration, abs=1 / FPS)


@S3_ONLY
async def test_middle_chunk_over_a_url_reads_well_under_the_whole_object(
    stored: Storage,
    proxy: CountingProxy,
    media: Media,
    clip_size: int,
    info: MediaInfo,
    tmp_path: Path,
) -> None:
    await encode_chunk(media, proxy.url_of(await remote(stored)), info, tmp_path)
    share = proxy.sent / clip_size
    print(f"a 1/5 chunk read {proxy.sent} of {clip_size} bytes ({share:.0%})")
    assert len(proxy.requests) > 1  # ranged: the index at the end, then the chunk's range
    assert share < 0.6


@S3_ONLY
async def test_every_request_of_a_read_over_a_url_carries_the_versions_etag(
    stored: Storage, proxy: CountingProxy, media: Media, info: MediaInfo, tmp_path: Path
) -> None:
    source = await remote(stored)
    await encode_chunk(media, proxy.url_of(source), info, tmp_path)
    assert source.etag is not None and source.etag.startswith('"')
    assert len(proxy.requests) > 1
    assert [r.get("If-Match") for r in proxy.requests] == [source.etag] * len(proxy.requests)


@S3_ONLY
async def test_object_replaced_after_its_version_was_recorded_fails_the_chunk(
    stored: Storage, proxy: CountingProxy, media: Media, info: MediaInfo, tmp_path: Path
) -> None:
    source = await remote(stored)
    await stored.put_file(KEY, media.landscape(), "video/mp4")
    with pytest.raises(TranscodeFailed):
        await encode_chunk(media, proxy.url_of(source), info, tmp_path)
    assert proxy.statuses == [412]


@S3_ONLY
async def test_object_replaced_in_the_middle_of_a_read_fails_the_chunk_not_shortens_it(
    stored: Storage,
    proxy: CountingProxy,
    media: Media,
    clip_size: int,
    info: MediaInfo,
    tmp_path: Path,
) -> None:
    async def replace_before_the_chunks_range(range_header: str) -> None:
        # Once ffmpeg has opened the input and seeks into the middle of the media data.
        start = int(range_header.removeprefix("bytes=").partition("-")[0] or 0)
        if clip_size // 4 < start < clip_size * 3 // 4:
            proxy.before = None
            await stored.put_file(KEY, media.landscape(), "video/mp4")

    proxy.before = replace_before_the_chunks_range
    with pytest.raises(TranscodeFailed):
        await encode_chunk(media, proxy.url_of(await remote(stored)), info, tmp_path)
    assert proxy.before is None  # the object was replaced while ffmpeg read it
    assert proxy.statuses[0] == 206 and proxy.statuses[-1] == 412


# Where the source is: the file in place, or a URL; never a changed object


async def test_chunk_source_is_the_file_where_storage_has_one_else_a_url(
    stored: Storage, clip: Path
) -> None:
    info = await stored.head(KEY)
    assert info is not None
    source = await chunk_source(stored, KEY, info.version, URL_TTL)
    local = await stored.local_path(KEY)
    if local is None:
        assert isinstance(source, RemoteSource) and source.url.startswith("http://")
        assert source.etag == info.etag
    else:
        assert source == local
        assert await asyncio.to_thread(local.read_bytes) == await asyncio.to_thread(clip.read_bytes)
        assert "file" in input_args(source) and "http" not in " ".join(input_args(source))


async def test_chunk_source_of_a_changed_object_raises_object_changed(
    stored: Storage, media: Media
) -> None:
    info = await stored.head(KEY)
    assert info is not None
    await stored.put_file(KEY, media.landscape(), "video/mp4")
    with pytest.raises(ObjectChanged):
        await chunk_source(stored, KEY, info.version, URL_TTL)


async def test_local_path_of_a_missing_object_is_none(storage: Storage) -> None:
    assert await storage.local_path("videos/source/missing.mp4") is None


# HTTP(S) only, and nothing a response names


@pytest.mark.parametrize(
    ("url", "protocols"),
    [
        ("http://s3.local/b/k?X-Amz-Signature=1", "http,tcp"),
        ("https://s3.local/b/k", "https,tls,tcp"),
    ],
)
def test_remote_input_whitelists_its_schemes_protocols_and_never_file(
    url: str, protocols: str
) -> None:
    args = input_args(RemoteSource(url, '"abc"'))
    whitelist = args[args.index("-protocol_whitelist") + 1]
    assert whitelist == protocols and "file" not in whitelist.split(",")
    assert args[args.index("-headers") + 1] == 'If-Match: "abc"\r\n'
    assert args[-2:] == ["-i", url] and args.count("-protocol_whitelist") == 1
    assert ("-tls_verify" in args) is url.startswith("https:")


def test_remote_input_without_an_etag_sends_no_header() -> None:
    assert "-headers" not in input_args(RemoteSource("http://s3.local/b/k"))


def test_file_input_args_are_unchanged() -> None:
    assert input_args(Path("/w/in.mp4")) == [
        "-format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv",
        "-protocol_whitelist", "file", "-i", "file:/w/in.mp4",
    ]  # fmt: skip


NOT_HTTP = [
    "file:{clip}",
    "{clip}",
    "subfile,,start,0,end,0,,:{clip}",
    "concat:{clip}|{clip}",
    "data:video/mp4;base64,AAAA",
    "ftp://127.0.0.1:9/clip.mp4",
]


@pytest.mark.parametrize("url", NOT_HTTP)
def test_remote_source_of_a_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        RemoteSource(url.format(clip="/w/in.mp4"))


@pytest.mark.parametrize("etag", ['"a"\r\nX-Injected: 1', "", '"a" "b"'])
def test_remote_source_of_an_etag_that_is_not_one_token_is_refused(etag: str) -> None:
    with pytest.raises(ValueError, match="ETag"):
        RemoteSource("http://s3.local/b/k", etag)


@pytest.mark.parametrize("url", NOT_HTTP)
async def test_remote_whitelist_makes_ffmpeg_refuse_a_url_that_is_not_http(
    media: Media, clip: Path, url: str
) -> None:
    args = input_args(RemoteSource("http://127.0.0.1:9/clip.mp4"))
    args[args.index("-i") + 1] = url.format(clip=clip)
    returncode, stderr = await read_one_frame(media, args)
    assert returncode != 0 and "not on whitelist" in stderr


@dataclasses.dataclass
class Redirects:
    """A server that redirects to the clip's file and serves a text playlist naming it."""

    server: TestServer
    redirected: list[str]  # the Location of each redirect it answered


@pytest.fixture
async def redirects(aiohttp_server: ServerFactory, clip: Path, media: Media) -> Redirects:
    playlist = media.disguised_playlist(clip)
    redirected: list[str] = []

    async def redirect(request: web.Request) -> web.StreamResponse:
        redirected.append(request.query["to"].format(clip=clip))
        raise web.HTTPFound(redirected[-1])

    async def disguised(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(playlist)

    app = web.Application()
    app.router.add_get("/redirect.mp4", redirect)
    app.router.add_get("/video.mp4", disguised)
    return Redirects(await aiohttp_server(app), redirected)


@pytest.mark.parametrize("to", ["file:{clip}", "file://{clip}", "subfile,,start,0,end,0,,:{clip}"])
async def test_remote_read_redirected_to_a_local_file_reads_no_file(
    redirects: Redirects, media: Media, to: str
) -> None:
    url = str(redirects.server.make_url("/redirect.mp4").with_query(to=to))
    returncode, stderr = await read_one_frame(media, input_args(RemoteSource(url)))
    assert redirects.redirected and redirects.redirected[0].endswith("remote_source.mp4")
    # A frame read from the file would exit 0. ffmpeg's http follows a redirect as HTTP, to the
    # host it names (for `file:`, none: port 80 of no host); ffmpeg 6.0 crashes on the subfile one.
    assert returncode != 0, stderr


async def test_remote_playlist_disguised_as_a_video_is_refused(
    redirects: Redirects, media: Media
) -> None:
    url = str(redirects.server.make_url("/video.mp4"))
    returncode, stderr = await read_one_frame(media, input_args(RemoteSource(url)))
    assert returncode != 0 and "not on whitelist" in stderr


def self_signed_context(directory: Path) -> ssl.SSLContext:
    """A server context for 127.0.0.1 with a certificate no one vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


@pytest.fixture
async def https_server(clip: Path, tmp_path: Path) -> AsyncIterator[TestServer]:
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(clip)

    app = web.Application()
    app.router.add_get("/clip.mp4", serve)
    server = TestServer(app)
    await server.start_server(ssl=self_signed_context(tmp_path))
    assert server.scheme == "https"
    yield server
    await server.close()


async def test_https_source_whose_certificate_does_not_verify_is_refused(
    https_server: TestServer, media: Media
) -> None:
    args = input_args(RemoteSource(str(https_server.make_url("/clip.mp4"))))
    returncode, stderr = await read_one_frame(media, args)
    assert returncode != 0 and "certificate failed verification" in stderr
    at = args.index("-tls_verify")
    # The same server, its certificate unchecked: it was the check that refused it.
    returncode, stderr = await read_one_frame(media, args[:at] + args[at + 2 :])
    assert returncode == 0, stderr
