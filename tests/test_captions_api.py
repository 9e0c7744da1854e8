"""Caption tracks through the API: owners add SRT or WebVTT per language, everyone who may see
the video lists them and fetches each through a signed URL; refusals change nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from yarl import URL

from tests.errors_support import assert_error
from tests.gallery_support import ADMIN, ALICE, BOB, Gallery, expect, signed
from videoforge import keys
from videoforge.db import videos as videos_db
from videoforge.gallery.captions import MAX_CAPTION_BYTES, normalise_language

SRT = (
    "1\n00:00:00,500 --> 00:00:01,500\nHello <b>world</b>\n\n"
    "2\n00:00:02,000 --> 00:00:02,900\nBye\n"
)
SRT_AS_WEBVTT = (
    "WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nHello <b>world</b>\n\n"
    "00:00:02.000 --> 00:00:02.900\nBye\n\n"
)
VTT = "WEBVTT\n\n00:00.000 --> 00:01.000\nOlá\n"


def captions_path(video_id: int) -> str:
    return f"/api/gallery/videos/{video_id}/captions"


async def post_caption(gallery: Gallery, video_id: int, user: str | None, **body: Any) -> Any:
    return await send(gallery, video_id, user, json.dumps(body))


async def send(gallery: Gallery, video_id: int, user: str | None, body: str) -> Any:
    """POST a JSON body (a stream: aiohttp warns about large raw bytes bodies)."""
    data = io.BytesIO(body.encode())
    headers = {"Content-Type": "application/json"}
    return await gallery.request("POST", captions_path(video_id), user, data=data, headers=headers)


async def tracks(gallery: Gallery, video_id: int, user: str | None = ALICE) -> list[Any]:
    listed = await expect(await gallery.request("GET", captions_path(video_id), user), 200)
    return list(listed["captions"])


async def fetch(gallery: Gallery, url: str) -> tuple[int, str, str]:
    """(status, content type with charset, body) of a caption URL."""
    async with gallery.http.get(signed(url)) as response:
        content_type = response.headers.get("Content-Type", "")
        return response.status, content_type, await response.text()


@pytest.fixture
async def video(gallery: Gallery) -> dict[str, Any]:
    """A public video of Alice's, 3 s long (as a transcode would have probed it)."""
    record = await gallery.upload(ALICE)
    await videos_db.update_video(gallery.app[keys.DB], record["id"], {"duration": 3.0})
    await gallery.app[keys.GALLERY].invalidate(record["id"])
    return record


# --- adding, replacing, listing, deleting -----------------------------------------------------


async def test_owner_posts_srt_and_the_signed_url_serves_it_as_webvtt(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    response = await post_caption(
        gallery, video["id"], ALICE, language="en", label="English", content=SRT
    )
    track = await expect(response, 201)

    assert (track["language"], track["label"]) == ("en", "English")
    assert await fetch(gallery, track["url"]) == (200, "text/vtt; charset=utf-8", SRT_AS_WEBVTT)
    listed = await tracks(gallery, video["id"], BOB)
    assert [(t["language"], t["label"]) for t in listed] == [("en", "English")]
    assert (await fetch(gallery, listed[0]["url"]))[2] == SRT_AS_WEBVTT
    stream = await expect(await gallery.stream(video["id"]), 200)
    assert [(c["language"], c["label"]) for c in stream["captions"]] == [("en", "English")]
    assert (await fetch(gallery, stream["captions"][0]["url"]))[2] == SRT_AS_WEBVTT


async def test_webvtt_with_bom_is_kept_and_posting_the_language_again_replaces_it(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    first = await post_caption(
        gallery, video["id"], ALICE, language="pt-br", content="\ufeff" + VTT
    )
    assert (await expect(first, 201))["language"] == "pt-BR"
    again = SRT.replace("Bye", "Tchau")
    replaced = await post_caption(
        gallery, video["id"], ALICE, language="PT-BR", label="Português", content=again
    )

    track = await expect(replaced, 200)
    assert (track["language"], track["label"]) == ("pt-BR", "Português")
    listed = await tracks(gallery, video["id"])
    assert [(t["language"], t["label"]) for t in listed] == [("pt-BR", "Português")]
    assert "Tchau" in (await fetch(gallery, listed[0]["url"]))[2]


async def test_a_track_without_label_is_labelled_with_its_language(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    track = await expect(
        await post_caption(gallery, video["id"], ALICE, language="de", content=VTT), 201
    )
    assert track["label"] == "de"


async def test_delete_removes_the_track_in_any_case_of_its_tag_and_again_is_404(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    for language in ("en", "pt-BR"):
        await expect(
            await post_caption(gallery, video["id"], ALICE, language=language, content=VTT), 201
        )
    url = (await tracks(gallery, video["id"]))[1]["url"]
    path = f"{captions_path(video['id'])}/pt-br"

    await expect(await gallery.request("DELETE", path, ALICE), 200)

    assert [t["language"] for t in await tracks(gallery, video["id"])] == ["en"]
    assert (await fetch(gallery, url))[0] == 404
    await assert_error(await gallery.request("DELETE", path, ALICE), 404, "Caption track not found")
    await assert_error(
        await gallery.request("DELETE", f"{captions_path(video['id'])}/not a tag", ALICE), 404
    )


async def test_other_users_may_not_add_or_delete_tracks_but_an_admin_may_delete(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    await expect(await post_caption(gallery, video["id"], ALICE, language="en", content=VTT), 201)
    path = f"{captions_path(video['id'])}/en"

    await assert_error(
        await post_caption(gallery, video["id"], BOB, language="fr", content=VTT), 403
    )
    await assert_error(
        await post_caption(gallery, video["id"], None, language="fr", content=VTT), 401
    )
    await assert_error(await gallery.request("DELETE", path, BOB), 403)
    assert [t["language"] for t in await tracks(gallery, video["id"])] == ["en"]
    await expect(await gallery.request("DELETE", path, ADMIN), 200)
    assert await tracks(gallery, video["id"]) == []


async def test_a_private_videos_tracks_are_listed_only_to_its_owner_and_admins(
    gallery: Gallery,
) -> None:
    private = await gallery.upload(ALICE, visibility="private")
    await expect(await post_caption(gallery, private["id"], ALICE, language="en", content=VTT), 201)

    for user in (BOB, None):
        await assert_error(await gallery.request("GET", captions_path(private["id"]), user), 403)
        await assert_error(await gallery.stream(private["id"], user), 403)
    for user in (ALICE, ADMIN):
        assert [t["language"] for t in await tracks(gallery, private["id"], user)] == ["en"]


async def test_captions_of_an_unknown_video_are_404(gallery: Gallery) -> None:
    for response in (
        await gallery.request("GET", captions_path(999999), ALICE),
        await post_caption(gallery, 999999, ALICE, language="en", content=VTT),
        await gallery.request("DELETE", f"{captions_path(999999)}/en", ALICE),
        await gallery.request("GET", "/api/gallery/videos/x1/captions", ALICE),
    ):
        await assert_error(response, 404, "Video not found")


# --- refusals -------------------------------------------------------------------------------

A_CUE = "a cue is a timing line 'start --> end', then its text"
LABEL_REFUSED_ERROR = 'label: Must not contain <, >, & or ".'
CUES_TOO_LATE = "WEBVTT\n\n00:00.000 --> 00:01.000\nok\n\n00:03.500 --> 00:04.200\nlate\n"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"language": "en_US", "content": VTT},
            400,
            "language: Must be a BCP 47 language tag, such as en or pt-BR.",
        ),
        ({"language": "e", "content": VTT}, 400, None),
        ({"language": "en"}, 400, None),
        ({"language": "en", "content": VTT, "label": "  "}, 400, None),
        # Markup or a quote in a label: refused, never escaped (NAME, Plyr's menus).
        *(
            ({"language": "en", "content": VTT, "label": label}, 400, LABEL_REFUSED_ERROR)
            for label in ("<img src=x>", "Tom & Jerry", 'The "cut"', "a > b")
        ),
        ({"language": "en", "content": "x" * (MAX_CAPTION_BYTES + 1)}, 413, None),
        ({"language": "en", "content": "WEBVTT\n\n\x00\x01\x02\x89PNG"}, 400, None),
        (
            {"language": "en", "content": "WEBVTT\n\n00:00.000 --> 00:01.000\nok\n\x00\x9f"},
            400,
            "line 5: control character U+0000: not text",
        ),
        ({"language": "en", "content": "WEBVTT\n\nbad\ud800"}, 400, "line 3: not UTF-8 text"),
        ({"language": "en", "content": ""}, 400, f"no cue found (the file has 0 lines): {A_CUE}"),
        (
            {"language": "en", "content": "WEBVTT\n"},
            400,
            f"no cue found (the file has 1 line): {A_CUE}",
        ),
        (
            {"language": "en", "content": CUES_TOO_LATE},
            400,
            "line 6: the cue ends at 4.200s, after the video (3.0s)",
        ),
        (
            {"language": "en", "content": "1\n00:00:02,000 --> 00:00:01,000\nbackwards\n"},
            400,
            "line 2: the cue must end after it starts",
        ),
    ],
)
async def test_refused_tracks_say_why_and_change_nothing(
    gallery: Gallery,
    video: dict[str, Any],
    body: dict[str, Any],
    status: int,
    message: str | None,
) -> None:
    await expect(await post_caption(gallery, video["id"], ALICE, language="en", content=SRT), 201)
    before = await tracks(gallery, video["id"])

    refused = await post_caption(gallery, video["id"], ALICE, **body)
    text = await refused.text()
    assert refused.status == status, text
    error = json.loads(text)["error"]
    assert message is None or error == message, text

    after = await tracks(gallery, video["id"])
    assert [(t["language"], t["label"]) for t in after] == [
        (t["language"], t["label"]) for t in before
    ]
    assert (await fetch(gallery, after[0]["url"]))[2] == SRT_AS_WEBVTT


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_track_not_sent_as_json_is_415_and_stores_nothing(
    gallery: Gallery, video: dict[str, Any], content_type: str
) -> None:
    """What a form on another site can send, with the viewer's cookies: refused like every
    JSON body sent as something else."""
    body = json.dumps({"language": "en", "content": "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"})
    headers = {"Content-Type": content_type}
    path = captions_path(video["id"])
    response = await gallery.request("POST", path, ALICE, data=body, headers=headers)
    await assert_error(response, 415, "Send the body as application/json")
    assert await tracks(gallery, video["id"]) == []


async def test_a_body_too_large_for_any_track_is_413(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    content = "\u00e9" * MAX_CAPTION_BYTES  # 2 MiB as UTF-8, 6 MiB escaped
    response = await send(
        gallery, video["id"], ALICE, json.dumps({"language": "en", "content": content})
    )
    await assert_error(response, 413, "Request body too large")
    assert await tracks(gallery, video["id"]) == []


async def test_a_megabyte_track_escaped_as_json_is_accepted(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    cue = "00:00.000 --> 00:01.000\n" + "\u00e9" * 1000 + "\n\n"
    content = "WEBVTT\n\n" + cue * (MAX_CAPTION_BYTES // len(cue.encode()) - 1)
    assert len(content.encode()) > MAX_CAPTION_BYTES * 0.99
    response = await post_caption(gallery, video["id"], ALICE, language="en", content=content)
    await expect(response, 201)


async def test_hostile_markup_is_stripped_from_what_the_caption_url_serves(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    hostile = (
        "WEBVTT\n\n00:00.000 --> 00:01.000\n"
        "<script>alert(1)</script><img src=x onerror=alert(2)>"
        "Hi <!-- hidden --><b onclick=x>there</b>\n"
        "<i>&amp; <u>under</u></i> <c.red>red</c> <v Bob>Bob</v> <iframe src=//evil></iframe>\n"
    )
    track = await expect(
        await post_caption(gallery, video["id"], ALICE, language="en", content=hostile), 201
    )

    _, _, served = await fetch(gallery, track["url"])
    assert served == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n"
        "Hi <b>there</b>\n<i>&amp; <u>under</u></i> <c.red>red</c> <v Bob>Bob</v>\n\n"
    )
    for word in ("script", "alert", "onerror", "img", "hidden", "onclick", "iframe", "evil"):
        assert word not in served


# --- the signed URL ---------------------------------------------------------------------------


async def test_caption_url_with_a_bad_expired_or_other_scopes_token_is_403(
    gallery: Gallery, video: dict[str, Any]
) -> None:
    track = await expect(
        await post_caption(gallery, video["id"], ALICE, language="en", content=VTT), 201
    )
    url = URL(track["url"], encoded=True)
    token = url.parts[-2]
    subject, expires, signature = token.split(".")
    service = gallery.app[keys.GALLERY]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    forged = {
        "tampered signature": f"{subject}.{expires}.{flipped}",
        "other video": f"{int(subject) + 1}.{expires}.{signature}",
        "later expiry": f"{subject}.{int(expires) + 60}.{signature}",
        "expired": service.captions.tokens.issue(video["id"], -10),
        "an HLS token": service.playlists.master_url(video["id"], 60).split("/")[-2],
        "no token": "x",
    }

    for name, bad in forged.items():
        status, _, text = await fetch(gallery, str(url).replace(token, bad))
        assert status == 403, (name, text)
    assert (await fetch(gallery, str(url).replace("/en.vtt", "/fr.vtt")))[0] == 404
    assert (await fetch(gallery, str(url).replace("/en.vtt", "/en.srt")))[0] == 404


def test_language_tags_take_rfc_5646_case() -> None:
    assert normalise_language("pt-br") == normalise_language("PT-BR") == "pt-BR"
    assert normalise_language("ZH-HANT-tw") == "zh-Hant-TW"
    assert normalise_language("EN") == "en"
    assert normalise_language("es-419") == "es-419"
    assert normalise_language("sl-ROZAJ") == "sl-rozaj"
    assert normalise_language("en-x-AB") == "en-x-ab"  # after a singleton, no region
    assert normalise_language("de-CH-1996") == "de-CH-1996"
