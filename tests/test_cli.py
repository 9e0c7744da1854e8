"""The `videoforge` command, run for real as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.s3 import S3Server, client_of
from tests.support import free_port

TIMEOUT = 90


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "videoforge", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def fetch(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"VIDEOFORGE_SERVER_DATA_DIR": str(tmp_path / "data"), "VIDEOFORGE_CONFIG": ""}


def test_bad_config_value_exits_2_naming_the_key(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_cli("serve", env={**env, "VIDEOFORGE_SERVER_PORT": "eighty"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_misspelled_section_in_environment_exits_2_naming_the_variable(
    tmp_path: Path, env: dict[str, str]
) -> None:
    misspelled = {**env, "VIDEOFORGE_DATABSE_URL": "postgresql://db.example/videoforge"}
    result = run_cli("serve", env=misspelled, cwd=tmp_path)
    assert result.returncode == 2
    assert "VIDEOFORGE_DATABSE_URL" in result.stderr


def test_unknown_config_key_in_file_exits_2(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[cache]\nurll = 'redis://x'\n")
    result = run_cli("doctor", "--config", str(config), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "cache.urll" in result.stderr


def test_token_prints_a_verifiable_token_on_its_last_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    result = run_cli("token", "--user", "alice", "--admin", "--ttl", "60", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert token.count(".") == 2
    secret = tmp_path / "data" / "auth.secret"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_token_with_unsafe_user_id_exits_2(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_cli("token", "--user", "../root", env=env, cwd=tmp_path)
    assert result.returncode == 2


@pytest.mark.parametrize("ttl", ["0", "-5"])
def test_token_with_a_ttl_that_is_not_positive_exits_2_naming_the_option(
    tmp_path: Path, env: dict[str, str], ttl: str
) -> None:
    result = run_cli("token", "--user", "alice", "--ttl", ttl, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "argument --ttl" in result.stderr
    assert "auth.token_ttl" not in result.stderr


@pytest.mark.parametrize(
    ("command", "listed"),
    [
        (["upload", "clip.mp4", "--visibility", "secret"], "'public', 'unlisted', 'private'"),
        (["jobs", "--status", "DONE"], "'PENDING', 'DOWNLOADING', 'PROCESSING', 'UPLOADING'"),
    ],
    ids=["visibility", "status"],
)
def test_an_invalid_choice_lists_the_plain_values(
    tmp_path: Path, env: dict[str, str], command: list[str], listed: str
) -> None:
    result = run_cli(*command, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert listed in result.stderr
    assert "<" not in result.stderr.splitlines()[-1]


def test_token_in_jwks_mode_exits_2(tmp_path: Path, env: dict[str, str]) -> None:
    jwks = {
        "VIDEOFORGE_AUTH_MODE": "jwks",
        "VIDEOFORGE_AUTH_JWKS_URL": "http://127.0.0.1:1/jwks.json",
        "VIDEOFORGE_AUTH_ISSUER": "http://127.0.0.1:1",
    }
    result = run_cli("token", "--user", "alice", env={**env, **jwks}, cwd=tmp_path)
    assert result.returncode == 2
    assert "identity provider" in result.stderr


def test_migrate_reports_the_schema_version(
    tmp_path: Path, env: dict[str, str], database_url: str
) -> None:
    result = run_cli("migrate", env={**env, "VIDEOFORGE_DATABASE_URL": database_url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "schema at version" in result.stdout


def test_doctor_with_every_component_up_exits_0(
    tmp_path: Path, env: dict[str, str], database_url: str
) -> None:
    result = run_cli("doctor", env={**env, "VIDEOFORGE_DATABASE_URL": database_url}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for component in ("ffmpeg", "ffprobe", "database", "storage", "queue", "cache"):
        assert f"ok    {component}" in result.stdout
    assert "cors" not in result.stdout  # local storage: pages upload to the app itself


def test_doctor_warns_about_an_s3_bucket_whose_cors_blocks_uploads_and_still_exits_0(
    tmp_path: Path, env: dict[str, str], database_url: str, s3_server: S3Server, s3_bucket: str
) -> None:
    s3 = {
        "VIDEOFORGE_DATABASE_URL": database_url,
        "VIDEOFORGE_SERVER_PUBLIC_URL": "http://localhost:8080",
        "VIDEOFORGE_STORAGE_BACKEND": "s3",
        "VIDEOFORGE_STORAGE_BUCKET": s3_bucket,
        "VIDEOFORGE_STORAGE_ENDPOINT_URL": s3_server.endpoint_url,
        "VIDEOFORGE_STORAGE_CREATE_BUCKET": "true",
    }
    result = run_cli("doctor", env={**env, **s3}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    storage" in result.stdout
    warning = f"the bucket has no CORS rules: browsers cannot upload to bucket '{s3_bucket}'"
    assert f"WARN  cors      {warning}\n" in result.stdout

    rule = {
        "AllowedOrigins": ["http://localhost:8080"],
        "AllowedMethods": ["PUT"],
        "ExposeHeaders": ["ETag"],
    }
    with contextlib.closing(client_of(s3_server)) as client:
        client.put_bucket_cors(Bucket=s3_bucket, CORSConfiguration={"CORSRules": [rule]})
    result = run_cli("doctor", env={**env, **s3}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "ok    cors      http://localhost:8080 may PUT parts and read their ETag" in result.stdout
    )


def test_doctor_with_cache_and_sqs_down_says_what_is_wrong(
    tmp_path: Path, env: dict[str, str], database_url: str, sqs_credentials: str
) -> None:
    broken = {
        "VIDEOFORGE_DATABASE_URL": database_url,
        "VIDEOFORGE_CACHE_URL": f"redis://127.0.0.1:{free_port()}/0",
        "VIDEOFORGE_QUEUE_BACKEND": "sqs",
        "VIDEOFORGE_QUEUE_SQS_ENDPOINT_URL": sqs_credentials,
        "VIDEOFORGE_QUEUE_SQS_QUEUE": "no-such-queue",
    }
    result = run_cli("doctor", env={**env, **broken}, cwd=tmp_path)
    assert result.returncode == 1
    assert "FAIL  cache" in result.stdout
    assert "FAIL  queue" in result.stdout and "no-such-queue" in result.stdout
    assert "ok    database" in result.stdout


def test_serve_with_embedded_defaults_answers_health_and_stops_cleanly_on_sigterm(
    tmp_path: Path, embedded_data_dir: Path
) -> None:
    env = {"VIDEOFORGE_SERVER_DATA_DIR": str(embedded_data_dir), "VIDEOFORGE_CONFIG": ""}
    port = free_port()
    serve_env = {**os.environ, **env, "VIDEOFORGE_SERVER_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "videoforge", "serve"],
        env=serve_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status, body = wait_for_health(f"http://127.0.0.1:{port}/api/health", proc)
        assert status == 200, body
        token = run_cli("token", "--user", "zoe", env=env, cwd=tmp_path).stdout.splitlines()[-1]
        assert fetch(f"http://127.0.0.1:{port}/api/auth/me", token) == (
            200,
            {"user": {"id": "zoe", "isAdmin": False, "groups": []}},
        )
        assert fetch(f"http://127.0.0.1:{port}/api/auth/me", token + "x")[0] == 401
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert f"serving on http://127.0.0.1:{port}" in output
    assert not (embedded_data_dir / "pg" / "postmaster.pid").exists()


def wait_for_health(url: str, proc: subprocess.Popen[str]) -> tuple[int, Any]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{proc.communicate()[0]}")
        try:
            return fetch(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("server did not answer in time")
