"""Every service a test needs is real and started here, on free ports, by the tests themselves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port
from videoforge.config import Config, build_config

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
    "tests.fixtures.redis",
    "tests.fixtures.sqs",
    "tests.fixtures.jwks",
]

MakeConfig = Callable[..., Config]


@pytest.fixture
def make_config(tmp_path: Path, database_url: str) -> MakeConfig:
    """A config on this test's own database and data dir; sections may be overridden."""

    def make(**sections: dict[str, Any]) -> Config:
        raw: dict[str, dict[str, Any]] = {
            "server": {"data_dir": str(tmp_path / "data"), "port": free_port()},
            "database": {"url": database_url, "pool_min_size": 1, "pool_max_size": 4},
            # Off unless a test is about them: many tests create jobs and uploads in a burst.
            "limits": {"max_active_jobs": 0, "jobs_per_minute": 0, "upload_urls_per_minute": 0},
        }
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        port = raw["server"]["port"]
        raw["server"].setdefault("public_url", f"http://127.0.0.1:{port}")
        return build_config(raw)

    return make
