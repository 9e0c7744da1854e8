"""`videoforge doctor`'s bucket CORS check: the rule check alone, and against SeaweedFS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.s3 import S3Server, client_of
from videoforge.config import Config, build_config
from videoforge.ops.doctor import CorsProblem, check_bucket_cors, cors_problem, site_origin
from videoforge.storage import create_storage

ROOT = Path(__file__).resolve().parent.parent

SITE = "https://videos.example.com"
GOOD_RULE = {
    "AllowedOrigins": [SITE],
    "AllowedMethods": ["GET", "HEAD", "PUT"],
    "AllowedHeaders": ["*"],
    "ExposeHeaders": ["ETag"],
    "MaxAgeSeconds": 3600,
}


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ([GOOD_RULE], None),
        ([{**GOOD_RULE, "AllowedOrigins": ["*"]}], None),
        ([{**GOOD_RULE, "AllowedOrigins": ["https://*.example.com"]}], None),
        ([{**GOOD_RULE, "AllowedOrigins": ["HTTPS://Videos.Example.com"]}], None),
        ([{**GOOD_RULE, "ExposeHeaders": ["etag", "x-amz-request-id"]}], None),
        ([], "the bucket has no CORS rules"),
        (
            [{**GOOD_RULE, "AllowedMethods": ["GET"]}],
            f"no CORS rule allows PUT from {SITE}",
        ),
        (
            [{**GOOD_RULE, "AllowedOrigins": ["https://other.example.org"]}],
            f"no CORS rule allows PUT from {SITE}",
        ),
        (
            [{key: value for key, value in GOOD_RULE.items() if key != "ExposeHeaders"}],
            f"the CORS rule allowing PUT from {SITE} does not expose ETag",
        ),
        # The store answers with the first rule that matches: a later one does not help.
        (
            [{**GOOD_RULE, "ExposeHeaders": []}, GOOD_RULE],
            f"the CORS rule allowing PUT from {SITE} does not expose ETag",
        ),
        ([{**GOOD_RULE, "AllowedMethods": ["GET"], "ExposeHeaders": []}, GOOD_RULE], None),
    ],
)
def test_cors_problem_names_what_keeps_browsers_from_uploading_parts(
    rules: list[dict[str, Any]], problem: str | None
) -> None:
    assert cors_problem(rules, SITE) == problem


def test_site_origin_is_scheme_host_and_port() -> None:
    assert site_origin("https://Videos.Example.com/app/") == SITE
    assert site_origin("http://localhost:8080") == "http://localhost:8080"


@pytest.fixture
def config(tmp_path: Path, s3_storage_settings: dict[str, Any]) -> Config:
    server = {"data_dir": str(tmp_path / "data"), "public_url": f"{SITE}/"}
    return build_config({"server": server, "storage": s3_storage_settings})


@pytest.fixture
def s3_client(s3_server: S3Server) -> Iterator[Any]:
    client = client_of(s3_server)
    yield client
    client.close()


async def test_a_bucket_without_cors_rules_is_a_problem(config: Config) -> None:
    with pytest.raises(CorsProblem) as caught:
        await check_bucket_cors(config)
    bucket = config.storage.bucket
    assert caught.value.message == (
        f"the bucket has no CORS rules: browsers cannot upload to bucket {bucket!r}"
    )


async def test_a_bucket_whose_cors_lets_the_site_put_and_read_etags_passes(
    config: Config, s3_client: Any
) -> None:
    async with create_storage(config):  # creates the bucket
        pass
    cors = {"CORSRules": [GOOD_RULE]}
    s3_client.put_bucket_cors(Bucket=config.storage.bucket, CORSConfiguration=cors)
    assert await check_bucket_cors(config) == f"{SITE} may PUT parts and read their ETag"


async def test_a_bucket_whose_cors_hides_the_etag_is_a_problem(
    config: Config, s3_client: Any
) -> None:
    async with create_storage(config):
        pass
    hidden = {**GOOD_RULE, "ExposeHeaders": ["x-amz-request-id"]}
    s3_client.put_bucket_cors(
        Bucket=config.storage.bucket, CORSConfiguration={"CORSRules": [hidden]}
    )
    with pytest.raises(CorsProblem, match="does not expose ETag"):
        await check_bucket_cors(config)


def test_compose_sets_a_bucket_cors_rule_that_lets_its_site_upload_parts() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    site = compose["services"]["api"]["environment"]["VIDEOFORGE_SERVER_PUBLIC_URL"]
    cors = compose["services"]["s3-cors"]
    assert "./deploy/s3-cors.json:/etc/videoforge/s3-cors.json:ro" in cors["volumes"]
    assert "file:///etc/videoforge/s3-cors.json" in cors["command"][0]
    rules = json.loads((ROOT / "deploy" / "s3-cors.json").read_text())["CORSRules"]
    assert cors_problem(rules, site_origin(site)) is None
    assert f"-s3.allowedOrigins={site_origin(site)}" in compose["services"]["s3"]["command"]
