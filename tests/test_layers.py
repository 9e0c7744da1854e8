"""Which parts of videoforge may load which: checked in a fresh interpreter, as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import videoforge
from videoforge.model import JobStatus


def modules_loaded_by(statement: str) -> set[str]:
    script = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=60
    )
    return set(done.stdout.split())


def test_api_client_loads_neither_the_database_driver_nor_the_server() -> None:
    loaded = modules_loaded_by("import videoforge.client.commands")
    assert "asyncpg" not in loaded
    assert "botocore" not in loaded  # the storage rules it uses come without the S3 backend
    assert not {name for name in loaded if name.startswith(("videoforge.db", "videoforge.web"))}


def test_the_domains_words_load_nothing_of_ours() -> None:
    loaded = modules_loaded_by("import videoforge.model")
    assert {name for name in loaded if name.startswith("videoforge")} == {
        "videoforge",
        "videoforge.model",
    }


PACKAGE = Path(videoforge.__file__).parent


def lines_matching(pattern: re.Pattern[str], *layers: str) -> list[str]:
    """`path:line` of every line under these folders of the package (all of it if none) that
    matches `pattern` at its start."""
    roots = [PACKAGE / layer for layer in layers] or [PACKAGE]
    return [
        f"{path.relative_to(PACKAGE)}:{number}"
        for root in roots
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.match(line)
    ]


def imports_of(module: str) -> re.Pattern[str]:
    """An import statement of `module` (or of something in it)."""
    parent, _, name = module.rpartition(".")
    dotted = re.escape(module)
    return re.compile(
        rf"\s*(from {dotted}\b|import {dotted}\b|from {re.escape(parent)} import {name}\b)"
    )


def test_job_statuses_are_spelled_only_in_the_model() -> None:
    quoted = re.compile(".*['\"](" + "|".join(JobStatus) + ")['\"]")
    assert [place for place in lines_matching(quoted) if not place.startswith("model.py:")] == []


def test_handlers_reach_the_database_only_through_the_domain() -> None:
    assert lines_matching(imports_of("videoforge.db"), "web") == []


def test_nothing_below_the_handlers_imports_them() -> None:
    below = (
        "admin",
        "auth",
        "cache",
        "client",
        "db",
        "gallery",
        "jobs",
        "ops",
        "queue",
        "storage",
        "support",
        "transcode",
        "webhooks",
    )
    assert lines_matching(imports_of("videoforge.web"), *below) == []


def test_the_gallery_does_not_reach_into_jobs() -> None:
    # Jobs update gallery videos; the gallery knows nothing of how they are made.
    assert lines_matching(imports_of("videoforge.jobs"), "gallery") == []


def test_output_keys_are_spelled_only_in_the_layout() -> None:
    quoted = re.compile(r".*['\"](videos/output|thumbnail\.jpg|preview\.gif)")
    places = lines_matching(quoted)
    assert [place for place in places if not place.startswith("storage/layout.py:")] == []
