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
    loaded = modules_loaded_by("import videoforge.client")
    assert "asyncpg" not in loaded
    assert not {name for name in loaded if name.startswith(("videoforge.db", "videoforge.web"))}


def test_the_domains_words_load_nothing_of_ours() -> None:
    loaded = modules_loaded_by("import videoforge.model")
    assert {name for name in loaded if name.startswith("videoforge")} == {
        "videoforge",
        "videoforge.model",
    }


def test_job_statuses_are_spelled_only_in_the_model() -> None:
    package = Path(videoforge.__file__).parent
    quoted = re.compile("['\"](" + "|".join(JobStatus) + ")['\"]")
    spelled = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "model.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if quoted.search(line)
    ]
    assert spelled == []


DB_IMPORT = re.compile(
    r"\s*(from videoforge\.db\b|from videoforge import db\b|import videoforge\.db\b)"
)


def test_handlers_reach_the_database_only_through_the_domain() -> None:
    web = Path(videoforge.__file__).parent / "web"
    reaching = [
        f"{path.relative_to(web)}:{number}"
        for path in sorted(web.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if DB_IMPORT.match(line)
    ]
    assert reaching == []


WEB_IMPORT = re.compile(
    r"\s*(from videoforge\.web\b|from videoforge import web\b|import videoforge\.web\b)"
)
BELOW_WEB = ("admin", "db", "gallery", "jobs", "queue", "storage", "transcode")


def test_nothing_below_the_handlers_imports_them() -> None:
    package = Path(videoforge.__file__).parent
    reaching = [
        f"{path.relative_to(package)}:{number}"
        for layer in BELOW_WEB
        for path in sorted((package / layer).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if WEB_IMPORT.match(line)
    ]
    assert reaching == []


def test_the_gallery_does_not_reach_into_jobs() -> None:
    # Jobs update gallery videos; the gallery knows nothing of how they are made.
    gallery = Path(videoforge.__file__).parent / "gallery"
    reaching = [
        f"{path.name}:{number}"
        for path in sorted(gallery.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.match(r"\s*(from videoforge\.jobs\b|from videoforge import jobs\b)", line)
    ]
    assert reaching == []
