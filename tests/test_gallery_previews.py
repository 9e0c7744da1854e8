"""The animated preview a listing and the details show: a signed URL of the video's
`preview_key`, null while it has none."""

from __future__ import annotations

from tests.gallery_support import ALICE, BOB, Gallery, expect
from videoforge import keys
from videoforge.db import videos as videos_db

GIF = b"GIF89a" + bytes(64)


async def test_listing_and_details_sign_the_preview_and_show_null_without_one(
    gallery: Gallery,
) -> None:
    shown = await gallery.upload(ALICE, title="with preview")
    bare = await gallery.upload(ALICE, title="without preview")
    key = "videos/output/1/preview.gif"
    await gallery.storage.put_bytes(key, GIF, "image/gif")
    await videos_db.update_video(gallery.app[keys.DB], shown["id"], {"preview_key": key})
    await gallery.app[keys.GALLERY].invalidate(shown["id"])

    listed = {v["title"]: v for v in (await gallery.listing(BOB))["videos"]}
    details = await expect(await gallery.details(shown["id"], BOB), 200)

    assert listed["without preview"]["previewUrl"] is None
    assert (await expect(await gallery.details(bare["id"], BOB), 200))["previewUrl"] is None
    for url in (listed["with preview"]["previewUrl"], details["previewUrl"]):
        assert await gallery.get_object(url) == (200, GIF)
