"""Configuration: file, environment, validation."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from videoforge.config import (
    CHUNK_ALIGNMENT_S,
    SECTIONS,
    Config,
    ConfigError,
    build_config,
    load_config,
)
from videoforge.transcode.command import HLS_SEGMENT_S

ROOT = Path(__file__).resolve().parent.parent


def test_load_config_without_file_or_env_gives_embedded_defaults() -> None:
    config = load_config(None, env={})
    assert config == Config()
    assert config.server.port == 8080
    assert config.server.data_dir == Path("./var")
    assert config.database.url == ""
    assert config.storage.backend == "local"
    assert config.queue.backend == "postgres"
    assert config.auth.mode == "local"


def test_example_config_lists_every_key_with_its_default() -> None:
    with (ROOT / "config.toml").open("rb") as fh:
        documented = tomllib.load(fh)
    assert set(documented) == set(SECTIONS)
    for section, cls in SECTIONS.items():
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        assert set(documented[section]) == set(defaults), section
        built = getattr(build_config(documented), section)
        assert built == cls(), section


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[server]\nport = 9000\n[storage]\nbackend = "local"\n')
    env = {"VIDEOFORGE_SERVER_PORT": "9100", "VIDEOFORGE_STORAGE_BACKEND": "s3"}
    config = load_config(path, env=env)
    assert config.server.port == 9100
    assert config.storage.backend == "s3"


def test_config_file_found_through_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text("[queue]\nmax_attempts = 5\n")
    assert load_config(None, env={"VIDEOFORGE_CONFIG": str(path)}).queue.max_attempts == 5


def test_client_and_config_file_environment_variables_are_not_settings() -> None:
    env = {"VIDEOFORGE_TOKEN": "abc", "VIDEOFORGE_SERVER": "http://x", "VIDEOFORGE_CONFIG": ""}
    assert load_config(None, env=env) == Config()


def test_other_programs_environment_variables_are_ignored() -> None:
    assert load_config(None, env={"PGHOST": "db", "VIDEOFORGEX_PORT": "1"}) == Config()


@pytest.mark.parametrize(
    "name", ["VIDEOFORGE_DATABSE_URL", "VIDEOFORGE_STORAGE", "VIDEOFORGE_WORKERS", "VIDEOFORGE_"]
)
def test_environment_variable_naming_no_section_and_key_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: not a setting"):
        load_config(None, env={name: "postgresql://db/videoforge"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"VIDEOFORGE_SERVER_PORT": "eighty"}, "server.port"),
        ({"VIDEOFORGE_SERVER_PORT": "70000"}, "server.port"),
        ({"VIDEOFORGE_SERVER_PROT": "80"}, "server.prot"),
        ({"VIDEOFORGE_STORAGE_BACKEND": "ftp"}, "storage.backend"),
        ({"VIDEOFORGE_STORAGE_CREATE_BUCKET": "maybe"}, "storage.create_bucket"),
        ({"VIDEOFORGE_STORAGE_MULTIPART_THRESHOLD": "many"}, "storage.multipart_threshold"),
        ({"VIDEOFORGE_QUEUE_MAX_ATTEMPTS": "0"}, "queue.max_attempts"),
        ({"VIDEOFORGE_DATABASE_URL": "mysql://x"}, "database.url"),
        ({"VIDEOFORGE_CACHE_URL": "memcached://x"}, "cache.url"),
        ({"VIDEOFORGE_AUTH_MODE": "jwks"}, "auth.jwks_url"),
        ({"VIDEOFORGE_TRANSCODE_WORKERS": "-1"}, "transcode.workers"),
        ({"VIDEOFORGE_SERVER_PUBLIC_URL": "ftp://x"}, "server.public_url"),
        ({"VIDEOFORGE_PAGES_GALLERY_PAGE_SIZE": "101"}, "pages.gallery_page_size"),
        ({"VIDEOFORGE_PAGES_LIBRARY_PAGE_SIZE": "ten"}, "pages.library_page_size"),
    ],
)
def test_bad_environment_value_names_the_key(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, env=env)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nport = true\n", "server.port"),
        ("[server]\nport = 1.5\n", "server.port"),
        ("[server]\nhost = 1\n", "server.host"),
        ("[servre]\nport = 1\n", "servre"),
        ("port = 1\n", "port"),
        ("[server\n", "not valid TOML"),
        ("[pages]\nadmin_jobs_page_size = 2.5\n", "pages.admin_jobs_page_size"),
    ],
)
def test_bad_file_value_names_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("[", r"\[")):
        load_config(path, env={})


def test_page_sizes_default_to_a_gallery_grid_of_24_and_lists_of_20() -> None:
    pages = load_config(None, env={}).pages
    assert pages.gallery_page_size == 24
    assert pages.library_page_size == 20
    assert pages.admin_jobs_page_size == 20


def test_page_size_is_set_from_the_environment() -> None:
    env = {"VIDEOFORGE_PAGES_ADMIN_JOBS_PAGE_SIZE": "5"}
    assert load_config(None, env=env).pages.admin_jobs_page_size == 5


@pytest.mark.parametrize("size", [1, 100])
def test_page_size_from_one_to_one_page_of_the_api_is_accepted(size: int) -> None:
    pages = build_config({"pages": {"gallery_page_size": size}}).pages
    assert pages.gallery_page_size == size


@pytest.mark.parametrize("key", ["gallery_page_size", "library_page_size", "admin_jobs_page_size"])
@pytest.mark.parametrize("size", [0, -1, 101])
def test_page_size_beyond_one_page_of_the_api_is_refused(key: str, size: int) -> None:
    with pytest.raises(ConfigError, match=rf"^pages\.{key}: must be between 1 and 100$"):
        build_config({"pages": {key: size}})


def test_multipart_threshold_defaults_to_64_mib() -> None:
    assert load_config(None, env={}).storage.multipart_threshold == 67108864


def test_multipart_threshold_of_5_mib_is_accepted() -> None:
    env = {"VIDEOFORGE_STORAGE_MULTIPART_THRESHOLD": "5242880"}
    assert load_config(None, env=env).storage.multipart_threshold == 5 * 1024**2


@pytest.mark.parametrize("threshold", [-1, 0, 5 * 1024**2 - 1])
def test_multipart_threshold_under_s3s_smallest_part_is_refused(threshold: int) -> None:
    with pytest.raises(
        ConfigError, match=r"^storage\.multipart_threshold: must be at least 5242880 \(5 MiB\)$"
    ):
        build_config({"storage": {"multipart_threshold": threshold}})


def test_chunks_are_a_minute_by_default() -> None:
    assert load_config(None, env={}).transcode.chunk_seconds == 60


@pytest.mark.parametrize("seconds", [0, 4, 8, 60, 120])
def test_chunk_seconds_of_whole_hls_segments_is_accepted(seconds: int) -> None:
    transcode = build_config({"transcode": {"chunk_seconds": seconds}}).transcode
    assert transcode.chunk_seconds == seconds


@pytest.mark.parametrize("seconds", [-4, -1, 1, 2, 6, 30, 61])
def test_chunk_seconds_not_a_whole_number_of_hls_segments_is_refused(seconds: int) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^transcode\.chunk_seconds: must be 0 \(off\) or a positive whole multiple of 4 "
        r"\(the HLS segment length\)$",
    ):
        build_config({"transcode": {"chunk_seconds": seconds}})


def test_chunk_seconds_from_the_environment_must_be_an_integer() -> None:
    with pytest.raises(ConfigError, match=r"^transcode\.chunk_seconds: must be an integer"):
        load_config(None, env={"VIDEOFORGE_TRANSCODE_CHUNK_SECONDS": "7.5"})
    env = {"VIDEOFORGE_TRANSCODE_CHUNK_SECONDS": "8"}
    assert load_config(None, env=env).transcode.chunk_seconds == 8


def test_chunk_alignment_is_the_hls_segment_length() -> None:
    assert CHUNK_ALIGNMENT_S == HLS_SEGMENT_S


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]


def test_base_url_uses_loopback_for_wildcard_host_and_prefers_public_url() -> None:
    assert build_config({"server": {"host": "0.0.0.0", "port": 81}}).server.base_url == (
        "http://127.0.0.1:81"
    )
    public = build_config({"server": {"public_url": "https://v.example.com/"}})
    assert public.server.base_url == "https://v.example.com"
