"""The spec's use cases 1, 3 and 4, call by call, as its curl examples make them."""

from __future__ import annotations

from tests.gallery_support import (
    ALICE,
    DATA,
    KEY_PATTERN,
    Gallery,
    assert_full_record,
    assert_list_item,
    expect,
)


async def test_use_cases_upload_browse_and_manage_in_sequence(gallery: Gallery) -> None:
    # Use case 1: upload and stream.
    # curl -X POST /api/upload/generate-url -d '{"filename": "my-video.mp4", ...}'
    ticket = await expect(
        await gallery.generate_url(ALICE, {"filename": "my-video.mp4", "contentType": "video/mp4"}),
        200,
    )
    assert set(ticket) == {"uploadUrl", "s3Key", "expiresIn"}
    assert ticket["expiresIn"] == 3600
    match = KEY_PATTERN.fullmatch(ticket["s3Key"])
    assert match is not None
    assert (match["user"], match["name"]) == (ALICE, "my-video.mp4")

    # curl -X PUT "$UPLOAD_URL" -H "Content-Type: video/mp4" --data-binary @my-video.mp4
    await gallery.put_object(ticket["uploadUrl"], DATA, "video/mp4")

    # curl -X POST /api/upload/confirm -d '{"s3Key": ..., "title": ..., ...}'
    confirm = {
        "s3Key": ticket["s3Key"],
        "title": "My Amazing Video",
        "description": "A video I uploaded",
        "visibility": "public",
    }
    video = await expect(await gallery.confirm(ALICE, confirm), 201)
    assert_full_record(video)
    assert {k: video[k] for k in ("title", "s3Key", "status", "visibility", "views")} == {
        "title": "My Amazing Video",
        "s3Key": ticket["s3Key"],
        "status": "uploaded",
        "visibility": "public",
        "views": 0,
    }
    video_id = video["id"]

    # curl -X GET /api/gallery/videos/42/stream -H "Authorization: Bearer $TOKEN"
    stream = await expect(await gallery.stream(video_id, ALICE), 200)
    assert await gallery.get_object(stream["streamUrl"]) == (200, DATA)

    # Use case 3: an anonymous visitor browses.
    # curl -X GET "/api/gallery/videos?page=1&limit=10"
    listing = await gallery.listing(page=1, limit=10)
    assert listing["pagination"] == {"total": 1, "page": 1, "limit": 10, "totalPages": 1}
    (item,) = listing["videos"]
    assert_list_item(item)
    assert {k: item[k] for k in ("id", "title", "description", "visibility", "status")} == {
        "id": video_id,
        "title": "My Amazing Video",
        "description": "A video I uploaded",
        "visibility": "public",
        "status": "uploaded",
    }
    assert item["userId"] == ALICE
    public_only = await gallery.listing(visibility="public")
    assert [v["id"] for v in public_only["videos"]] == [video_id]

    # curl -X GET "/api/gallery/videos?search=amazing"
    found = await gallery.listing(search="amazing")
    assert [v["id"] for v in found["videos"]] == [video_id]

    # curl -X GET "/api/gallery/videos/42" (increments the view count)
    details = await expect(await gallery.details(video_id), 200)
    assert_full_record(details)
    assert details["views"] == 1
    assert details["fileSize"] == len(DATA)
    assert "videoCodec" in details and "audioCodec" in details

    # curl -X GET "/api/gallery/videos/42/stream"
    anonymous_stream = await expect(await gallery.stream(video_id), 200)
    assert "streamUrl" in anonymous_stream
    assert await gallery.get_object(anonymous_stream["streamUrl"]) == (200, DATA)

    # Use case 4: the owner manages the library.
    # curl -X GET /api/gallery/videos -H "Authorization: Bearer $TOKEN"
    mine = await gallery.listing(ALICE)
    assert [v["id"] for v in mine["videos"]] == [video_id]

    # curl -X PUT /api/gallery/videos/42 -d '{"title": ..., "description": ..., "visibility": ...}'
    changes = {"title": "Updated Title", "description": "New description", "visibility": "private"}
    updated = await expect(await gallery.update(video_id, ALICE, changes), 200)
    assert_full_record(updated)
    assert {k: updated[k] for k in ("id", *changes)} == {"id": video_id, **changes}

    # Now private: the owner still lists it, an anonymous visitor neither lists nor opens it.
    assert await gallery.titles(ALICE) == {"Updated Title"}
    assert await gallery.titles() == set()
    assert await expect(await gallery.details(video_id), 403) == {"error": "Access denied"}

    # curl -X DELETE /api/gallery/videos/42
    deleted = await expect(await gallery.delete(video_id, ALICE), 200)
    assert deleted == {"message": "Video deleted successfully"}
    assert await expect(await gallery.details(video_id, ALICE), 404) == {"error": "Video not found"}
    assert await gallery.titles(ALICE) == set()
    # "DB record only, S3 files remain"
    assert await gallery.storage.head(ticket["s3Key"]) is not None
