"""Managing one's library through the HTTP API: update, delete, and what readers see next."""

from __future__ import annotations

from typing import Any

import pytest

from tests.errors_support import assert_error
from tests.gallery_support import (
    ADMIN,
    ALICE,
    BOB,
    DATA,
    Gallery,
    assert_full_record,
    expect,
)

DENIED = {"error": "Access denied"}
NOT_FOUND = {"error": "Video not found"}
DELETED = {"message": "Video deleted successfully"}


async def details_of(gallery: Gallery, video_id: int, user: str | None = ALICE) -> dict[str, Any]:
    record: dict[str, Any] = await expect(await gallery.details(video_id, user), 200)
    return record


# --- update -------------------------------------------------------------------------------------


async def test_update_by_owner_returns_full_record_and_is_read_back_at_once(
    cached_gallery: Gallery,
) -> None:
    gallery = cached_gallery
    video = await gallery.upload(ALICE, title="Old title", description="Old description")
    # Prime whatever the app caches: the owner's list and the video's details.
    await gallery.listing(ALICE)
    await gallery.listing(ALICE, mine="true")
    await details_of(gallery, video["id"])

    changes = {"title": "Updated Title", "description": "New description", "visibility": "unlisted"}
    updated = await expect(await gallery.update(video["id"], ALICE, changes), 200)
    assert_full_record(updated)
    assert {k: updated[k] for k in changes} == changes
    assert updated["id"] == video["id"]
    assert updated["userId"] == ALICE
    assert updated["s3Key"] == video["s3Key"]
    assert updated["fileSize"] == len(DATA)
    assert updated["createdAt"] == video["createdAt"]

    for query in ({}, {"mine": "true"}, {"visibility": "unlisted"}):
        listing = await gallery.listing(ALICE, **query)
        items = [item for item in listing["videos"] if item["id"] == video["id"]]
        assert len(items) == 1, query
        assert items[0]["title"] == "Updated Title"
        assert items[0]["description"] == "New description"
        assert items[0]["visibility"] == "unlisted"
    again = await details_of(gallery, video["id"])
    assert {k: again[k] for k in changes} == changes


async def test_update_of_one_field_leaves_the_others(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE, title="Keep", description="Keep too", visibility="private")
    updated = await expect(await gallery.update(video["id"], ALICE, {"title": "  New  "}), 200)
    assert (updated["title"], updated["description"], updated["visibility"]) == (
        "New",
        "Keep too",
        "private",
    )


async def test_update_to_private_hides_the_video_from_others_on_their_next_read(
    cached_gallery: Gallery,
) -> None:
    gallery = cached_gallery
    video = await gallery.upload(ALICE, title="Going private")
    assert await gallery.titles() == {"Going private"}
    assert await gallery.titles(BOB) == {"Going private"}
    assert await gallery.titles(search="going") == {"Going private"}
    await details_of(gallery, video["id"], None)

    await expect(await gallery.update(video["id"], ALICE, {"visibility": "private"}), 200)

    assert await gallery.titles() == set()
    assert await gallery.titles(BOB) == set()
    assert await gallery.titles(search="going") == set()
    assert await expect(await gallery.details(video["id"]), 403) == DENIED
    assert await expect(await gallery.details(video["id"], BOB), 403) == DENIED
    assert await expect(await gallery.stream(video["id"]), 403) == DENIED
    assert await gallery.titles(ALICE) == {"Going private"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("userId", BOB),
        ("views", 1000),
        ("status", "ready"),
        ("s3Key", "gallery/bob/x.mp4"),
        ("id", 12345),
        ("fileSize", 1),
        ("createdAt", "2000-01-01T00:00:00Z"),
        ("thumbnailUrl", "http://evil.example/x.jpg"),
    ],
)
async def test_update_with_mass_assignment_field_is_400_and_changes_nothing(
    gallery: Gallery, field: str, value: Any
) -> None:
    video = await gallery.upload(ALICE, title="Original")
    before = await details_of(gallery, video["id"])

    for body in ({field: value}, {"title": "Sneaky", field: value}):
        error = await expect(await gallery.update(video["id"], ALICE, body), 400)
        assert field in error["details"]

    after = await details_of(gallery, video["id"])
    assert after["views"] == before["views"] + 1
    unchanged = ("title", "userId", "status", "s3Key", "id", "fileSize", "createdAt")
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert await gallery.titles(ALICE, mine="true") == {"Original"}
    assert await gallery.titles(BOB, mine="true") == set()


async def test_update_with_empty_body_is_400_no_fields_to_update(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE)
    error = await expect(await gallery.update(video["id"], ALICE, {}), 400)
    assert error["error"] == "No fields to update"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"visibility": "secret"}, "visibility"),
        ({"visibility": None}, "visibility"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": None}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"description": "d" * 5001}, "description"),
    ],
)
async def test_update_with_invalid_value_is_400_and_changes_nothing(
    gallery: Gallery, body: dict[str, Any], field: str
) -> None:
    video = await gallery.upload(ALICE, title="Original", description="Same")
    error = await expect(await gallery.update(video["id"], ALICE, body), 400)
    assert field in error["details"]
    after = await details_of(gallery, video["id"])
    assert (after["title"], after["description"], after["visibility"]) == (
        "Original",
        "Same",
        "public",
    )


@pytest.mark.parametrize("user", [BOB, ADMIN])
async def test_update_by_non_owner_is_forbidden(gallery: Gallery, user: str) -> None:
    video = await gallery.upload(ALICE, title="Alice's")
    response = await gallery.update(video["id"], user, {"title": "Taken over"})
    assert await expect(response, 403) == DENIED
    assert (await details_of(gallery, video["id"]))["title"] == "Alice's"


async def test_update_of_private_video_by_non_owner_is_403_not_a_leak(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE, visibility="private")
    response = await gallery.update(video["id"], BOB, {"visibility": "public"})
    assert await expect(response, 403) == DENIED
    assert await gallery.titles(BOB) == set()


@pytest.mark.parametrize("video_id", ["999999", "abc", "0", "-1"])
async def test_update_of_unknown_video_is_404(gallery: Gallery, video_id: str) -> None:
    await gallery.upload(ALICE)
    response = await gallery.update(video_id, ALICE, {"title": "Nothing"})
    assert await expect(response, 404) == NOT_FOUND


async def test_update_without_token_is_401(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE, title="Untouched")
    response = await gallery.update(video["id"], None, {"title": "Anonymous"})
    assert await expect(response, 401) == {"error": "Authentication required"}
    assert (await details_of(gallery, video["id"]))["title"] == "Untouched"


async def test_update_with_malformed_json_is_400(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE)
    response = await gallery.request(
        "PUT",
        f"/api/gallery/videos/{video['id']}",
        ALICE,
        data=b"{title",
        headers={"Content-Type": "application/json"},
    )
    await assert_error(response, 400, "Request body is not valid JSON")


# --- delete -------------------------------------------------------------------------------------


async def test_delete_by_owner_removes_the_record_but_keeps_the_object(
    cached_gallery: Gallery,
) -> None:
    gallery = cached_gallery
    video = await gallery.upload(ALICE, title="Doomed")
    kept = await gallery.upload(ALICE, title="Kept")
    assert await gallery.titles() == {"Doomed", "Kept"}
    assert await gallery.titles(ALICE) == {"Doomed", "Kept"}
    assert await gallery.titles(ALICE, mine="true") == {"Doomed", "Kept"}
    await details_of(gallery, video["id"])

    assert await expect(await gallery.delete(video["id"], ALICE), 200) == DELETED

    for user in (ALICE, None, BOB):
        assert await expect(await gallery.details(video["id"], user), 404) == NOT_FOUND
        assert await expect(await gallery.stream(video["id"], user), 404) == NOT_FOUND
    assert await gallery.titles(ALICE) == {"Kept"}
    assert await gallery.titles() == {"Kept"}
    assert await gallery.titles(ALICE, mine="true") == {"Kept"}
    listing = await gallery.listing(ALICE)
    assert listing["pagination"]["total"] == 1
    assert [item["id"] for item in listing["videos"]] == [kept["id"]]

    info = await gallery.storage.head(video["s3Key"])
    assert info is not None and info.size == len(DATA)


async def test_delete_twice_is_404(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE)
    await expect(await gallery.delete(video["id"], ALICE), 200)
    assert await expect(await gallery.delete(video["id"], ALICE), 404) == NOT_FOUND


async def test_delete_by_admin_of_another_users_video_succeeds(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE, visibility="private")
    assert await expect(await gallery.delete(video["id"], ADMIN), 200) == DELETED
    assert await expect(await gallery.details(video["id"], ADMIN), 404) == NOT_FOUND
    assert await expect(await gallery.details(video["id"], ALICE), 404) == NOT_FOUND
    assert await gallery.titles(ALICE, mine="true") == set()
    assert await gallery.storage.head(video["s3Key"]) is not None


async def test_delete_by_another_user_is_forbidden_and_keeps_the_video(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE, title="Alice's")
    assert await expect(await gallery.delete(video["id"], BOB), 403) == DENIED
    assert (await details_of(gallery, video["id"]))["title"] == "Alice's"
    assert await gallery.titles() == {"Alice's"}


@pytest.mark.parametrize("video_id", ["999999", "abc", "0"])
async def test_delete_of_unknown_video_is_404(gallery: Gallery, video_id: str) -> None:
    await gallery.upload(ALICE)
    assert await expect(await gallery.delete(video_id, ALICE), 404) == NOT_FOUND
    assert await expect(await gallery.delete(video_id, ADMIN), 404) == NOT_FOUND
    assert len(await gallery.titles(ALICE)) == 1


async def test_delete_without_token_is_401(gallery: Gallery) -> None:
    video = await gallery.upload(ALICE)
    response = await gallery.delete(video["id"], None)
    assert await expect(response, 401) == {"error": "Authentication required"}
    assert len(await gallery.titles()) == 1


async def test_confirm_then_list_shows_the_new_video_at_once(cached_gallery: Gallery) -> None:
    gallery = cached_gallery
    await gallery.upload(ALICE, title="First")
    assert await gallery.titles(ALICE) == {"First"}
    assert await gallery.titles(ALICE, mine="true") == {"First"}
    await gallery.upload(ALICE, title="Second", visibility="private")
    assert await gallery.titles(ALICE) == {"First", "Second"}
    assert await gallery.titles(ALICE, mine="true") == {"First", "Second"}
    listing = await gallery.listing(ALICE)
    assert listing["pagination"]["total"] == 2
