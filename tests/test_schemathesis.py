"""The OpenAPI document says what the handlers check: schemathesis, run over the served app from
`/api/openapi.json`, finds nothing (every check, a short seeded run of every operation), with and
without a token. And the patterns the document gives agree with the checks they describe.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import marshmallow
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.gallery_support import (
    ADMIN,
    Gallery,
    StartGallery,
)
from videoforge.errors import InvalidKey
from videoforge.storage.validation import validate_key
from videoforge.web.schemas import STORAGE_KEY_MAX_LENGTH, STORAGE_KEY_PATTERN, Text

RUN_TIMEOUT_S = 100
# Short and seeded: the same cases every run, every operation a few times, within seconds.
MAX_EXAMPLES = 5
SEED = 1
# A file over `storage.max_upload_bytes` is a 413, which the document says and schemathesis
# does not count as a refusal by default. Whether a webhook URL is accepted depends on what its
# host resolves to, which no schema can say: a schema-valid URL is rightly refused (400) when it
# points inward or nowhere.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                     "429", "5xx"]

[[operations]]
include-operation-id = "create_webhook"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "409", "429"]
"""


def schemathesis_command(url: str, config: Path, token: str | None) -> list[str]:
    command = [
        sys.executable,
        "-c",
        "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file",
        str(config),
        "run",
        f"{url}/api/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-database",
        "none",
        # One worker: with threads, hypothesis parses its lambdas' source (ast.parse) in
        # several at once, and CPython 3.11 then fails with "AST constructor recursion depth
        # mismatch", an internal error of the run rather than a finding. On 2 cores one worker
        # is also the faster.
        "--workers",
        "1",
        "--no-color",
    ]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    return command


@pytest.mark.parametrize("user", [None, ADMIN], ids=["anonymous", "admin-token"])
async def test_schemathesis_finds_the_api_as_documented(
    start_gallery: StartGallery, tmp_path: Path, user: str | None
) -> None:
    gallery: Gallery = await start_gallery()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    token = None if user is None else gallery.authenticator.issue(user, admin=user == ADMIN)
    url = gallery.config.server.base_url
    proc = await asyncio.create_subprocess_exec(
        *schemathesis_command(url, config, token),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-12000:]
    assert "Tested: " in report and "Selected: " in report, report[-4000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    assert selected and selected.group(1) == selected.group(2), report[-4000:]


# --- the document's patterns are the checks' own rules ----------------------------------------

KEYS = st.from_regex(STORAGE_KEY_PATTERN, fullmatch=True).filter(
    lambda key: len(key) <= STORAGE_KEY_MAX_LENGTH
)


@settings(max_examples=300, deadline=None)
@given(KEYS)
def test_a_key_the_document_allows_is_a_valid_storage_key(key: str) -> None:
    assert validate_key(key) == key


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_key_the_document_refuses_is_refused(key: str) -> None:
    if re.fullmatch(STORAGE_KEY_PATTERN, key) is None:
        with pytest.raises(InvalidKey):
            validate_key(key)


class TitleSchema(marshmallow.Schema):
    title = Text(max_length=20, blank=False)
    notes = Text(max_length=20, multiline=True)


def _accepted(field: str, value: str) -> bool:
    try:
        TitleSchema().load({field: value})
    except marshmallow.ValidationError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["title", "notes"]), st.text(max_size=24))
def test_text_is_accepted_exactly_when_the_document_says(field: str, value: str) -> None:
    schema = TitleSchema().fields[field].metadata
    documented = re.fullmatch(schema["pattern"], value) and len(value) <= schema["maxLength"]
    assert _accepted(field, value) == bool(documented), (field, value)


async def test_document_states_the_limits_the_handlers_check(start_gallery: StartGallery) -> None:
    gallery = await start_gallery()
    response = await gallery.request("GET", "/api/openapi.json")
    spec = await response.json()
    schemas = spec["components"]["schemas"]
    file_size = schemas["GenerateUploadUrl"]["properties"]["fileSize"]
    assert file_size["maximum"] == 5 * 1024**3  # one PUT: S3's cap, under the 20 GiB default
    assert "x-maximum-from" not in file_size
    multipart_size = schemas["StartMultipart"]["properties"]["size"]
    assert multipart_size["maximum"] == gallery.config.storage.max_upload_bytes == 20 * 1024**3
    assert schemas["CreateJob"]["properties"]["outputFormats"]["uniqueItems"] is True
    assert schemas["ConfirmUpload"]["properties"]["transcode"]["uniqueItems"] is True
    for name in ("title", "description"):
        assert "pattern" in schemas["UpdateVideo"]["properties"][name]
    listing = spec["paths"]["/api/gallery/videos"]["get"]["parameters"]
    search = next(p for p in listing if p["name"] == "search")
    assert "pattern" in search["schema"]
    media = spec["paths"]["/media/{key}"]
    for method in ("get", "put"):
        assert "400" in media[method]["responses"]
        key = next(p for p in media[method]["parameters"] if p["name"] == "key")
        assert key["schema"]["pattern"] == STORAGE_KEY_PATTERN
