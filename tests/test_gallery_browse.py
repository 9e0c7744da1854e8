"""Browsing through the HTTP API: who sees what, listing, search, details, views and streams."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from tests.errors_support import assert_error
from tests.gallery_support import (
    ADMIN,
    ALICE,
    BOB,
    DATA,
    Gallery,
    assert_full_record,
    assert_list_item,
    expect,
)

VISIBILITIES = ("public", "unlisted", "private")
NOT_FOUND = {"error": "Video not found"}
DENIED = {"error": "Access denied"}


@dataclass
class Population:
    """A gallery with one video per (owner, visibility), titled `"{owner} {visibility}"`."""

    gallery: Gallery
    ids: dict[str, int]

    def id_of(self, owner: str, visibility: str) -> int:
        return self.ids[f"{owner} {visibility}"]


@pytest.fixture
async def population(gallery: Gallery) -> Population:
    ids = {}
    for owner in (ALICE, BOB):
        for visibility in VISIBILITIES:
            title = f"{owner} {visibility}"
            record = await gallery.upload(owner, title=title, visibility=visibility)
            ids[title] = record["id"]
    return Population(gallery, ids)


PUBLIC = {"alice public", "bob public"}
ALICE_OWN = {"alice public", "alice unlisted", "alice private"}
BOB_OWN = {"bob public", "bob unlisted", "bob private"}


# --- who sees what in lists ---------------------------------------------------------------------


async def test_list_for_anonymous_shows_public_videos_only(population: Population) -> None:
    gallery = population.gallery
    assert await gallery.titles() == PUBLIC
    assert await gallery.titles(visibility="public") == PUBLIC
    assert await gallery.titles(visibility="unlisted") == set()
    assert await gallery.titles(visibility="private") == set()
    assert await gallery.titles(mine="false") == PUBLIC
    assert await gallery.titles(search="alice") == {"alice public"}


async def test_list_for_owner_shows_all_public_plus_own_unlisted_and_private(
    population: Population,
) -> None:
    gallery = population.gallery
    assert await gallery.titles(ALICE) == PUBLIC | ALICE_OWN
    assert await gallery.titles(ALICE, mine="false") == PUBLIC | ALICE_OWN
    assert await gallery.titles(ALICE, visibility="public") == PUBLIC
    assert await gallery.titles(ALICE, visibility="unlisted") == {"alice unlisted"}
    assert await gallery.titles(ALICE, visibility="private") == {"alice private"}


async def test_list_mine_true_shows_only_own_videos(population: Population) -> None:
    gallery = population.gallery
    assert await gallery.titles(ALICE, mine="true") == ALICE_OWN
    assert await gallery.titles(BOB, mine="true") == BOB_OWN
    assert await gallery.titles(ALICE, mine="true", visibility="private") == {"alice private"}
    assert await gallery.titles(ALICE, mine="true", visibility="public") == {"alice public"}
    assert await gallery.titles(ADMIN, mine="true") == set()


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"visibility": "private"},
        {"visibility": "unlisted"},
        {"mine": "false"},
        {"mine": "false", "visibility": "private"},
        {"search": "alice"},
        {"search": "private"},
        {"search": "unlisted", "visibility": "unlisted"},
        {"userId": ALICE},
        {"user": ALICE, "visibility": "private"},
    ],
)
async def test_list_never_shows_another_users_unlisted_or_private_videos(
    population: Population, query: dict[str, str]
) -> None:
    gallery = population.gallery
    hidden_from_bob = {"alice unlisted", "alice private"}
    hidden_from_alice = {"bob unlisted", "bob private"}
    assert not await gallery.titles(BOB, **query) & hidden_from_bob
    assert not await gallery.titles(ALICE, **query) & hidden_from_alice
    assert not await gallery.titles(ADMIN, **query) & (hidden_from_alice | hidden_from_bob)
    assert not await gallery.titles(None, **query) & (hidden_from_alice | hidden_from_bob)


async def test_list_for_admin_shows_public_videos_but_not_others_private_ones(
    population: Population,
) -> None:
    gallery = population.gallery
    assert await gallery.titles(ADMIN) == PUBLIC
    assert await gallery.titles(ADMIN, visibility="private") == set()
    assert await gallery.titles(ADMIN, visibility="unlisted") == set()


async def test_list_items_have_the_list_shape(population: Population) -> None:
    listing = await population.gallery.listing(ALICE)
    assert listing["videos"]
    for item in listing["videos"]:
        assert_list_item(item)
        assert item["status"] == "uploaded"
        assert item["views"] == 0


# --- details and stream access ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visibility", "user", "allowed"),
    [
        ("public", None, True),
        ("public", BOB, True),
        ("unlisted", None, True),
        ("unlisted", BOB, True),
        ("unlisted", ADMIN, True),
        ("unlisted", ALICE, True),
        ("private", None, False),
        ("private", BOB, False),
        ("private", ALICE, True),
        ("private", ADMIN, True),
    ],
)
async def test_details_and_stream_follow_visibility(
    population: Population, visibility: str, user: str | None, allowed: bool
) -> None:
    gallery = population.gallery
    video_id = population.id_of(ALICE, visibility)
    details = await gallery.details(video_id, user)
    stream = await gallery.stream(video_id, user)
    if allowed:
        record = await expect(details, 200)
        assert_full_record(record)
        assert record["title"] == f"alice {visibility}"
        body = await expect(stream, 200)
        assert await gallery.get_object(body["streamUrl"]) == (200, DATA)
    else:
        assert await expect(details, 403) == DENIED
        assert await expect(stream, 403) == DENIED


@pytest.mark.parametrize("video_id", ["999999", "abc", "-1", "0", "99999999999999999999", "1.0"])
async def test_details_and_stream_of_unknown_or_malformed_id_are_404(
    population: Population, video_id: str
) -> None:
    gallery = population.gallery
    for user in (None, ALICE, ADMIN):
        assert await expect(await gallery.details(video_id, user), 404) == NOT_FOUND
        assert await expect(await gallery.stream(video_id, user), 404) == NOT_FOUND


@pytest.mark.parametrize("authorization", ["Bearer garbage", "Token abc", "Bearer a.b.c"])
async def test_bad_token_on_anonymous_routes_is_401(
    population: Population, authorization: str
) -> None:
    gallery = population.gallery
    video_id = population.id_of(ALICE, "public")
    headers = {"Authorization": authorization}
    for path in (
        "/api/gallery/videos",
        f"/api/gallery/videos/{video_id}",
        f"/api/gallery/videos/{video_id}/stream",
    ):
        response = await gallery.client.get(path, headers=headers)
        error = await expect(response, 401)
        assert isinstance(error["error"], str)
    assert await gallery.views(video_id) == 0


async def test_expired_token_on_anonymous_list_is_401(population: Population) -> None:
    gallery = population.gallery
    token = gallery.authenticator.issue(ALICE, ttl=-3600)
    response = await gallery.client.get(
        "/api/gallery/videos", headers={"Authorization": f"Bearer {token}"}
    )
    error = await expect(response, 401)
    assert isinstance(error["error"], str)


# --- list: pagination, ordering, validation -----------------------------------------------------


async def test_list_pages_fifteen_videos_newest_first(gallery: Gallery) -> None:
    titles = [f"Video {n:02d}" for n in range(15)]
    for title in titles:
        await gallery.upload(ALICE, title=title)
    newest_first = titles[::-1]

    first = await gallery.listing(limit=10)
    assert first["pagination"] == {"total": 15, "page": 1, "limit": 10, "totalPages": 2}
    second = await gallery.listing(page=2, limit=10)
    assert second["pagination"] == {"total": 15, "page": 2, "limit": 10, "totalPages": 2}
    beyond = await gallery.listing(page=3, limit=10)
    assert beyond["videos"] == []
    assert beyond["pagination"]["total"] == 15

    shown = [item["title"] for item in first["videos"] + second["videos"]]
    assert shown == newest_first
    assert len(first["videos"]) == 10 and len(second["videos"]) == 5

    default = await gallery.listing()
    assert default["pagination"] == {"total": 15, "page": 1, "limit": 10, "totalPages": 2}
    assert [item["title"] for item in default["videos"]] == newest_first[:10]

    one = await gallery.listing(ALICE, page=15, limit=1)
    assert [item["title"] for item in one["videos"]] == [titles[0]]
    assert one["pagination"]["totalPages"] == 15


async def test_list_page_far_beyond_the_end_is_empty(gallery: Gallery) -> None:
    await gallery.upload(ALICE)
    listing = await gallery.listing(page=1_000_000_000, limit=100)
    assert listing["videos"] == []
    assert listing["pagination"]["total"] == 1


async def test_list_of_empty_gallery_has_zero_pages(gallery: Gallery) -> None:
    listing = await gallery.listing()
    assert listing == {
        "videos": [],
        "pagination": {"total": 0, "page": 1, "limit": 10, "totalPages": 0},
    }


async def test_list_limit_over_100_is_capped(gallery: Gallery) -> None:
    await gallery.upload(ALICE)
    listing = await gallery.listing(limit=1000)
    assert listing["pagination"]["limit"] == 100
    assert listing["pagination"]["totalPages"] == 1


BELOW_ONE = "Must be greater than or equal to 1."
NOT_AN_INTEGER = "Not a valid integer."
NOT_A_VISIBILITY = "Must be one of: public, unlisted, private."


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"limit": "0"}, BELOW_ONE),
        ({"limit": "-1"}, BELOW_ONE),
        ({"limit": "--1"}, NOT_AN_INTEGER),
        ({"limit": "+1"}, NOT_AN_INTEGER),
        ({"limit": "abc"}, NOT_AN_INTEGER),
        ({"limit": "1.5"}, NOT_AN_INTEGER),
        ({"limit": ""}, NOT_AN_INTEGER),
        ({"page": "0"}, BELOW_ONE),
        ({"page": "-3"}, BELOW_ONE),
        ({"page": "-"}, NOT_AN_INTEGER),
        ({"page": "abc"}, NOT_AN_INTEGER),
        ({"visibility": "secret"}, NOT_A_VISIBILITY),
        ({"visibility": "PRIVATE"}, NOT_A_VISIBILITY),
    ],
)
async def test_list_with_invalid_query_is_400(
    gallery: Gallery, query: dict[str, str], problem: str
) -> None:
    [field] = query
    response = await gallery.list_videos(ALICE, **query)
    await assert_error(response, 400, f"{field}: {problem}", {field: [problem]})


async def test_list_with_search_over_200_chars_is_400(gallery: Gallery) -> None:
    problem = "Longer than 200 characters."
    response = await gallery.list_videos(search="x" * 201)
    await assert_error(response, 400, f"search: {problem}", {"search": [problem]})
    await expect(await gallery.list_videos(search="x" * 200), 200)


async def test_list_mine_true_without_token_is_401(gallery: Gallery) -> None:
    error = await expect(await gallery.list_videos(mine="true"), 401)
    assert error == {"error": "Authentication required"}


async def test_list_ignores_unknown_query_parameters(gallery: Gallery) -> None:
    await gallery.upload(ALICE)
    listing = await gallery.listing(sort="views", order="asc; DROP TABLE gallery_videos")
    assert listing["pagination"]["total"] == 1


# --- search -------------------------------------------------------------------------------------


@pytest.fixture
async def searchable(gallery: Gallery) -> Gallery:
    await gallery.upload(ALICE, title="My amazing video", description="Filmed at the beach")
    await gallery.upload(ALICE, title="Cooking tutorial", description="Pasta, step by step")
    await gallery.upload(BOB, title="100% real", description="not staged")
    await gallery.upload(BOB, title="snake_case explained", description="naming things")
    await gallery.upload(BOB, title="Secret amazing", visibility="private")
    return gallery


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("AMAZING", {"My amazing video"}),
        ("amazing video", {"My amazing video"}),
        ("BEACH", {"My amazing video"}),
        ("step by", {"Cooking tutorial"}),
        ("%", {"100% real"}),
        ("0%", {"100% real"}),
        ("_", {"snake_case explained"}),
        ("e_c", {"snake_case explained"}),
        ("a%e", set()),
        ("\\", set()),
        ("'", set()),
        ("nothing like this", set()),
    ],
)
async def test_list_search_is_a_literal_case_insensitive_substring_match(
    searchable: Gallery, search: str, expected: set[str]
) -> None:
    assert await searchable.titles(search=search) == expected


async def test_list_search_includes_own_private_videos_only(searchable: Gallery) -> None:
    assert await searchable.titles(BOB, search="amazing") == {"My amazing video", "Secret amazing"}
    assert await searchable.titles(ALICE, search="amazing") == {"My amazing video"}


# --- views --------------------------------------------------------------------------------------


async def test_details_increments_views_and_shows_the_new_count(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE)
    first = await expect(await gallery.details(video["id"]), 200)
    second = await expect(await gallery.details(video["id"], BOB), 200)
    assert (first["views"], second["views"]) == (1, 2)


async def test_concurrent_details_requests_count_every_view(cached_gallery: Gallery) -> None:
    gallery = cached_gallery
    video = await gallery.upload(ALICE)
    await gallery.listing()  # the metadata may now be cached

    responses = await asyncio.gather(*(gallery.details(video["id"]) for _ in range(20)))
    counts = [(await expect(response, 200))["views"] for response in responses]
    assert sorted(counts) == list(range(1, 21))

    final = await expect(await gallery.details(video["id"], ALICE), 200)
    assert final["views"] == 21


async def test_denied_details_requests_do_not_count_views(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE, visibility="private")
    for user in (None, BOB, None):
        await assert_error(await gallery.details(video["id"], user), 403, "Access denied")
    owner_view = await expect(await gallery.details(video["id"], ALICE), 200)
    assert owner_view["views"] == 1


async def test_stream_does_not_count_views(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE)
    for user in (None, BOB, ALICE):
        await expect(await gallery.stream(video["id"], user), 200)
    details = await expect(await gallery.details(video["id"]), 200)
    assert details["views"] == 1


async def test_list_does_not_count_views(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE)
    for _ in range(3):
        await gallery.listing()
    assert await gallery.views(video["id"]) == 0


async def test_stream_of_unlisted_video_works_for_anyone_with_the_id(
    population: Population,
) -> None:
    gallery = population.gallery
    body = await expect(await gallery.stream(population.id_of(BOB, "unlisted")), 200)
    assert set(body) >= {"streamUrl", "expiresIn"}
    status, data = await gallery.get_object(body["streamUrl"], {"Range": "bytes=0-9"})
    assert (status, data) == (206, DATA[:10])
