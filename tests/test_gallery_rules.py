"""Pure gallery rules: upload key naming and which slices a listing may show."""

from __future__ import annotations

import re

import pytest

from videoforge.auth.tokens import Principal
from videoforge.db.videos import Slice
from videoforge.errors import Unauthorized
from videoforge.gallery.naming import safe_filename, upload_key
from videoforge.gallery.service import ListQuery, visible_slices
from videoforge.storage import validate_key

ALICE = Principal(user_id="alice", is_admin=False, groups=())
ADMIN = Principal(user_id="root", is_admin=True, groups=("admin",))
PUBLIC = Slice(None, ("public",))


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("my-video.mp4", "my-video.mp4"),
        ("../../etc/passwd", "passwd"),
        ("a/b\\c.mp4", "c.mp4"),
        ("\x00evil.mp4", "evil.mp4"),
        ("..", "video"),
        ("vidéo 🎬.mp4", "video.mp4"),
        ("a..b.mp4", "a.b.mp4"),
        (".hidden.mov", "hidden.mov"),
        ("🎬.webm", "video.webm"),
    ],
)
def test_safe_filename_keeps_only_a_harmless_basename(filename: str, expected: str) -> None:
    assert safe_filename(filename) == expected


def test_safe_filename_of_a_long_name_is_bounded_and_keeps_the_extension() -> None:
    name = safe_filename("x" * 1000 + ".mp4")
    assert len(name) == 100
    assert name.endswith(".mp4")


def test_upload_key_is_a_valid_key_under_the_owner_prefix() -> None:
    key = upload_key("alice", "../../x/../evil name.mp4", now_ms=1234567890123)
    assert key == "gallery/alice/1234567890123-evil-name.mp4"
    assert validate_key(key) == key
    assert re.fullmatch(r"gallery/alice/\d{13}-[A-Za-z0-9._-]+", upload_key("alice", "a.mp4"))


def test_anonymous_listing_shows_public_videos_only() -> None:
    assert visible_slices(None, ListQuery()) == [PUBLIC]
    assert visible_slices(None, ListQuery(visibility="private")) == []
    assert visible_slices(None, ListQuery(visibility="unlisted")) == []


def test_anonymous_listing_of_mine_needs_a_token() -> None:
    with pytest.raises(Unauthorized):
        visible_slices(None, ListQuery(mine=True))


def test_signed_in_listing_adds_only_the_viewers_own_hidden_videos() -> None:
    assert visible_slices(ALICE, ListQuery()) == [PUBLIC, Slice("alice", ("unlisted", "private"))]
    assert visible_slices(ALICE, ListQuery(visibility="private")) == [Slice("alice", ("private",))]
    assert visible_slices(ALICE, ListQuery(visibility="public")) == [PUBLIC]


def test_mine_lists_only_the_viewers_own_videos() -> None:
    assert visible_slices(ALICE, ListQuery(mine=True)) == [
        Slice("alice", ("public", "unlisted", "private"))
    ]


def test_admin_listing_does_not_include_other_users_hidden_videos() -> None:
    slices = visible_slices(ADMIN, ListQuery())
    assert all(piece.owner in (None, "root") for piece in slices)
    assert all(piece.visibilities == ("public",) for piece in slices if piece.owner is None)


def test_list_query_names_the_api_query_string_in_alphabetical_order() -> None:
    query = ListQuery(page=2, limit=24, search="clay pots", mine=True)
    assert query.api_query() == "limit=24&mine=true&page=2&search=clay+pots"
    assert ListQuery(page=1, limit=10).api_query() == "limit=10&page=1"
