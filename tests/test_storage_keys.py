"""Key validation and content types: pure functions shared by every backend."""

from __future__ import annotations

import pytest

from videoforge.errors import InvalidKey
from videoforge.storage import content_type_for, validate_key, validate_prefix

VALID_KEYS = [
    "a",
    "videos/output/0b7c/hls/master.m3u8",
    "uploads/été 100% ?#+&=.mp4",
    ".hidden/..dots/x..y",
    "k" * 1024,
    "é" * 512,
]
INVALID_KEYS = [
    "",
    "/abs",
    "../x",
    "a/../b",
    "a/..",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    "a\nb",
    "a\x7fb",
    "a\x85b",
    "k" * 1025,
    "é" * 513,
    "\ud800",
]


@pytest.mark.parametrize("key", VALID_KEYS, ids=repr)
def test_validate_key_accepts_safe_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
def test_validate_key_rejects_unsafe_keys(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize("prefix", ["", "videos", "videos/", "videos/out/job1"], ids=repr)
def test_validate_prefix_accepts_empty_and_one_trailing_slash(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "videos//", "/videos/", "../", "a/./"], ids=repr)
def test_validate_prefix_rejects_unsafe_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidKey):
        validate_prefix(prefix)


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("hls/master.m3u8", "application/vnd.apple.mpegurl"),
        ("hls/720p/seg_001.m4s", "video/iso.segment"),
        ("hls/seg.ts", "video/mp2t"),
        ("out/HIGH.MP4", "video/mp4"),
        ("out/preview.gif", "image/gif"),
        ("out/thumbnail.jpg", "image/jpeg"),
        ("uploads/raw", "application/octet-stream"),
        ("uploads/archive.tar.gz", "application/octet-stream"),
    ],
)
def test_content_type_for_follows_the_extension(key: str, content_type: str) -> None:
    assert content_type_for(key) == content_type
