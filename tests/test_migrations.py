"""Migrations (videoforge.db.migrations) and the schema they build, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.resources
import shutil
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from videoforge.db import Migration, MigrationError, load_migrations, migrate
from videoforge.db.migrations import parse_migrations

TABLES = {
    "users",
    "gallery_videos",
    "gallery_video_counts",
    "jobs",
    "job_chunks",
    "media_assets",
    "queue_messages",
    "schema_migrations",
    "uploads",
    "video_captions",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_events",
}
ALL = [step.version for step in load_migrations()]
NEXT = len(ALL) + 1
REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
async def empty_db(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(empty_database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


async def _versions(conn: asyncpg.Connection | asyncpg.Pool) -> list[int]:
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [row["version"] for row in rows]


# --- parsing -------------------------------------------------------------------------------------


def test_load_migrations_from_package_starts_at_initial_schema() -> None:
    steps = load_migrations()
    assert [step.version for step in steps] == list(range(1, len(steps) + 1))
    assert steps[0].name == "initial schema"
    assert "CREATE TABLE gallery_videos" in steps[0].sql


def test_package_schema_is_the_repository_schema_file() -> None:
    # One file, so the package can never ship a schema that differs from the one people read.
    shipped = importlib.resources.files("videoforge").joinpath("schema.sql")
    assert Path(str(shipped)).resolve() == REPOSITORY / "schema.sql"


def test_built_wheel_carries_the_repository_schema(tmp_path: Path) -> None:
    # Built from a copy, so the build's own files never land in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "schema.sql"):
        shutil.copy(REPOSITORY / name, source / name)
    shutil.copytree(
        REPOSITORY / "videoforge",
        source / "videoforge",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "vendor"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (wheel,) = tmp_path.glob("videoforge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("videoforge/schema.sql")
    assert shipped == (REPOSITORY / "schema.sql").read_bytes()


def test_parse_migrations_with_gap_in_versions_is_rejected() -> None:
    text = "-- migration: 1 one\nSELECT 1;\n-- migration: 3 three\nSELECT 3;\n"
    with pytest.raises(MigrationError, match="migration 3 found where 2 was expected"):
        parse_migrations(text)


def test_parse_migrations_with_sql_before_first_marker_is_rejected() -> None:
    with pytest.raises(MigrationError, match="before the first"):
        parse_migrations("-- header\nSELECT 1;\n-- migration: 1 one\nSELECT 1;\n")


def test_migration_checksum_ignores_surrounding_blank_lines_only() -> None:
    step = Migration(1, "one", "\nSELECT 1;\n")
    assert step.checksum == Migration(1, "one", "SELECT 1;\n\n\n").checksum
    assert step.checksum != Migration(1, "one", "SELECT 2;").checksum


# --- applying ------------------------------------------------------------------------------------


async def test_migrate_on_empty_database_creates_every_table_and_records_version_1(
    empty_db: asyncpg.Connection,
) -> None:
    assert await migrate(empty_db) == ALL
    assert await _tables(empty_db) == TABLES
    row = await empty_db.fetchrow("SELECT name, checksum, applied_at FROM schema_migrations")
    assert row["name"] == "initial schema"
    assert row["checksum"] == load_migrations()[0].checksum
    assert row["applied_at"] is not None


async def test_migrate_run_twice_applies_nothing_the_second_time(
    empty_db: asyncpg.Connection,
) -> None:
    assert await migrate(empty_db) == ALL
    assert await migrate(empty_db) == []
    assert await _versions(empty_db) == ALL


async def test_migrate_with_pool_on_template_database_applies_nothing(
    db_pool: asyncpg.Pool,
) -> None:
    assert await migrate(db_pool) == []
    assert await _versions(db_pool) == ALL


async def test_migrate_called_concurrently_on_empty_database_applies_once(
    empty_database_url: str,
) -> None:
    first = await asyncpg.connect(empty_database_url)
    second = await asyncpg.connect(empty_database_url)
    try:
        results = await asyncio.gather(migrate(first), migrate(second))
        assert sorted(results) == [[], ALL]
        assert await _versions(first) == ALL
    finally:
        await first.close()
        await second.close()


async def test_migrate_with_new_step_applies_only_that_step(db_pool: asyncpg.Pool) -> None:
    steps = [*load_migrations(), Migration(NEXT, "add notes", "CREATE TABLE notes (id int);")]
    assert await migrate(db_pool, steps) == [NEXT]
    assert await _versions(db_pool) == [*ALL, NEXT]


async def test_migrate_with_failing_step_rolls_that_step_back_entirely(
    db_pool: asyncpg.Pool,
) -> None:
    broken = Migration(NEXT, "broken", "CREATE TABLE half_done (id int);\nSELECT 1 / 0;")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(db_pool, [*load_migrations(), broken])
    assert await db_pool.fetchval("SELECT to_regclass('half_done')") is None
    assert await _versions(db_pool) == ALL


async def test_migrate_with_edited_applied_step_reports_checksum_mismatch(
    db_pool: asyncpg.Pool,
) -> None:
    original = load_migrations()[0]
    edited = dataclasses.replace(original, sql=original.sql + "\nCREATE TABLE sneaky (id int);")
    with pytest.raises(MigrationError, match=r"migration 1 \(initial schema\) was edited"):
        await migrate(db_pool, [edited])
    assert await db_pool.fetchval("SELECT to_regclass('sneaky')") is None


async def test_migrate_on_database_from_newer_release_is_refused(db_pool: asyncpg.Pool) -> None:
    await migrate(db_pool, [*load_migrations(), Migration(NEXT, "future", "SELECT 1;")])
    with pytest.raises(
        MigrationError, match=f"migration {NEXT}, which this videoforge does not know"
    ):
        await migrate(db_pool)


async def test_migrate_after_failure_releases_its_lock(db_pool: asyncpg.Pool) -> None:
    edited = Migration(1, "initial schema", "SELECT 'edited';")
    async with db_pool.acquire() as conn:
        with pytest.raises(MigrationError):
            await migrate(conn, [edited])
        held = await conn.fetchval(
            """
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND pid = pg_backend_pid()
            """
        )
    assert held == 0


# --- the schema ----------------------------------------------------------------------------------


async def _add_video(pool: asyncpg.Pool, title: str, description: str = "") -> int:
    return int(
        await pool.fetchval(
            """
            INSERT INTO gallery_videos (user_id, title, description, s3_key)
            VALUES ('user123', $1, $2, 'gallery/user123/' || gen_random_uuid())
            RETURNING id
            """,
            title,
            description,
        )
    )


async def test_gallery_search_with_ilike_matches_title_and_description_in_any_case(
    db_pool: asyncpg.Pool,
) -> None:
    by_title = await _add_video(db_pool, "Python TUTORIAL for beginners")
    by_description = await _add_video(db_pool, "Cooking", "a short Tutorial on pasta")
    await _add_video(db_pool, "Holiday", "beach")
    rows = await db_pool.fetch(
        "SELECT id FROM gallery_videos WHERE title ILIKE $1 OR description ILIKE $1",
        "%tutorial%",
    )
    assert {row["id"] for row in rows} == {by_title, by_description}


async def test_gallery_search_without_seqscan_can_use_trigram_indexes(
    db_pool: asyncpg.Pool,
) -> None:
    for n in range(200):
        await _add_video(db_pool, f"video {n}", f"description {n}")
    async with db_pool.acquire() as conn:
        await conn.execute("ANALYZE gallery_videos")
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch(
            "EXPLAIN SELECT id FROM gallery_videos"
            " WHERE title ILIKE '%tutorial%' OR description ILIKE '%tutorial%'"
        )
    plan = "\n".join(row[0] for row in rows)
    assert "gallery_videos_title_trgm_idx" in plan
    assert "gallery_videos_description_trgm_idx" in plan


async def test_gallery_video_defaults_match_a_just_confirmed_upload(db_pool: asyncpg.Pool) -> None:
    video_id = await _add_video(db_pool, "My Amazing Video")
    row = await db_pool.fetchrow("SELECT * FROM gallery_videos WHERE id = $1", video_id)
    assert (row["status"], row["visibility"], row["views"], row["description"]) == (
        "uploaded",
        "public",
        0,
        "",
    )


async def test_gallery_video_with_unknown_visibility_is_rejected(db_pool: asyncpg.Pool) -> None:
    video_id = await _add_video(db_pool, "clip")
    with pytest.raises(asyncpg.CheckViolationError):
        await db_pool.execute(
            "UPDATE gallery_videos SET visibility = 'secret' WHERE id = $1", video_id
        )


async def test_job_progress_above_100_is_rejected(db_pool: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await db_pool.execute(
            "INSERT INTO jobs (user_id, input_source, progress) VALUES ('u', 'in.mp4', 101)"
        )


async def test_job_update_refreshes_updated_at(db_pool: asyncpg.Pool) -> None:
    job_id, created = await db_pool.fetchrow(
        "INSERT INTO jobs (user_id, input_source) VALUES ('u', 'in.mp4') RETURNING id, updated_at"
    )
    # now() is the transaction's start time, so the update runs in a later transaction.
    updated = await db_pool.fetchval(
        "UPDATE jobs SET status = 'PROCESSING' WHERE id = $1 RETURNING updated_at", job_id
    )
    assert updated > created


async def test_job_defaults_match_a_new_pending_job(db_pool: asyncpg.Pool) -> None:
    row = await db_pool.fetchrow(
        "INSERT INTO jobs (user_id, input_source) VALUES ('user123', 'in.mp4') RETURNING *"
    )
    assert (row["status"], row["progress"], row["output_format"], row["attempts"]) == (
        "PENDING",
        0,
        "high,medium,low",
        0,
    )


async def test_job_delete_cascades_to_assets_and_unlinks_video(db_pool: asyncpg.Pool) -> None:
    video_id = await _add_video(db_pool, "clip")
    job_id = await db_pool.fetchval(
        """
        INSERT INTO jobs (user_id, input_source, gallery_video_id)
        VALUES ('u', 'in.mp4', $1)
        RETURNING id
        """,
        video_id,
    )
    await db_pool.execute("UPDATE gallery_videos SET job_id = $1 WHERE id = $2", job_id, video_id)
    await db_pool.execute(
        """
        INSERT INTO media_assets (job_id, asset_type, format, s3_key)
        VALUES ($1, 'thumbnail', 'jpg', 'videos/output/1/thumbnail.jpg')
        """,
        job_id,
    )
    await db_pool.execute("DELETE FROM jobs WHERE id = $1", job_id)
    assert await db_pool.fetchval("SELECT count(*) FROM media_assets") == 0
    assert (
        await db_pool.fetchval("SELECT job_id FROM gallery_videos WHERE id = $1", video_id) is None
    )


async def test_queue_message_defaults_make_it_visible_at_once(db_pool: asyncpg.Pool) -> None:
    row = await db_pool.fetchrow(
        "INSERT INTO queue_messages (queue, body) VALUES ('jobs', '{}') RETURNING *"
    )
    assert row["receive_count"] == 0
    assert row["dead_lettered_at"] is None
    assert row["visible_at"] <= await db_pool.fetchval("SELECT now()")
