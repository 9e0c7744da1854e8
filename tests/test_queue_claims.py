"""A receive takes no more messages off the PostgreSQL queue than it asked for, and a worker that
is handed more than one anyway gives the rest straight back.

`UPDATE ... FROM (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` claims more than n rows whenever
the plan rescans the subquery: each rescan skips the rows the statement has just updated and
locks n more. Users saw it on a fresh table, before the planner had statistics; every test here
runs on a fresh database cloned from a template that was never analyzed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.fixtures.config import MakeConfig
from videoforge.config import Config
from videoforge.jobs.context import StepContext
from videoforge.jobs.worker import WorkerPool
from videoforge.queue import Message, PostgresQueue
from videoforge.queue.postgres import CLAIM

# Long enough that a message dropped by a receiver could not come back during a test.
VISIBILITY = 120
QUEUE_SETTINGS = {"backend": "postgres", "visibility_timeout": VISIBILITY, "max_attempts": 3}
RUN_TIMEOUT = 10.0
JOINS = {"Nested Loop", "Hash Join", "Merge Join"}


@pytest.fixture
def config(make_config: MakeConfig, tmp_path: Path) -> Config:
    return make_config(queue=QUEUE_SETTINGS, transcode={"workers": 1, "temp_dir": str(tmp_path)})


@pytest.fixture
async def queue(config: Config, db_pool: asyncpg.Pool) -> AsyncIterator[PostgresQueue]:
    queue = PostgresQueue(config.queue, db_pool)
    await queue.open()
    try:
        yield queue
    finally:
        await queue.close()


@pytest.mark.parametrize(("sent", "asked"), [(3, 1), (5, 2), (12, 10)])
async def test_receive_claims_exactly_what_it_asked_for_and_leaves_the_rest_receivable(
    queue: PostgresQueue, sent: int, asked: int
) -> None:
    for job_id in range(1, sent + 1):
        await queue.send(job_id)

    first = await queue.receive(max_messages=asked)
    rest = await queue.receive(max_messages=10)

    assert [m.job_id for m in first] == list(range(1, asked + 1))
    assert [m.job_id for m in rest] == list(range(asked + 1, sent + 1))
    assert {m.receive_count for m in first + rest} == {1}


async def test_claim_plan_cannot_rescan_the_lock_and_limit(db_pool: asyncpg.Pool) -> None:
    """Whatever the planner picks, the rows chosen and locked are chosen once: no LockRows node
    (FOR UPDATE SKIP LOCKED) sits under a join, where it could be rescanned and lock more."""
    async with db_pool.acquire() as conn:
        for job_id in (1, 2, 3):
            await conn.execute(
                "INSERT INTO queue_messages (queue, body) VALUES ('jobs', $1)",
                json.dumps({"job_id": job_id}),
            )
        # Without ANALYZE, EXPLAIN only plans: nothing is claimed.
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {CLAIM}", "jobs", 1, 3, float(VISIBILITY))

    plan = json.loads(raw)[0]["Plan"]
    assert list(lock_rows_under_a_join(plan)) == []
    assert len(list(lock_rows_under_a_join(plan, any_place=True))) == 2  # both claims found


def lock_rows_under_a_join(
    node: dict[str, Any], under_join: bool = False, any_place: bool = False
) -> Iterator[dict[str, Any]]:
    """LockRows nodes reached through a join, not behind a CTE's stored result (or all of them
    with `any_place`). A CTE's plan starts afresh: it runs once and its rescans read its rows."""
    if node.get("Subplan Name", "").startswith("CTE "):
        under_join = False
    if node["Node Type"] == "LockRows" and (under_join or any_place):
        yield node
    under_join = under_join or node["Node Type"] in JOINS
    for child in node.get("Plans", []):
        yield from lock_rows_under_a_join(child, under_join, any_place)


class GreedyQueue(PostgresQueue):
    """The real PostgreSQL queue, but every receive brings three messages, however few were
    asked for: a backend with the bug the worker must survive."""

    async def receive(self, max_messages: int = 1, wait_seconds: float = 0.0) -> list[Message]:
        return await super().receive(3, wait_seconds)


class RecordingWorkers(WorkerPool):
    """Workers that, instead of running a job, note its message and stop."""

    handled: list[Message]

    async def handle(self, message: Message) -> None:
        self.handled.append(message)
        self.stopping.set()


async def test_worker_given_more_messages_than_it_asked_for_hands_the_rest_back(
    config: Config, db_pool: asyncpg.Pool, queue: PostgresQueue
) -> None:
    greedy = GreedyQueue(config.queue, db_pool)
    await greedy.open()
    try:
        for job_id in (1, 2, 3):
            await queue.send(job_id)
        workers = RecordingWorkers(config, step_context(config, db_pool), greedy)
        workers.handled = []

        await asyncio.wait_for(workers.run(), RUN_TIMEOUT)
    finally:
        await greedy.close()

    assert [m.job_id for m in workers.handled] == [1]
    # Back at once, as if never received: not invisible for the visibility timeout.
    back = await queue.receive(max_messages=10)
    assert [(m.job_id, m.receive_count) for m in back] == [(2, 1), (3, 1)]


def step_context(config: Config, pool: asyncpg.Pool) -> StepContext:
    """Only what claiming from the queue needs: these workers never run a job."""
    return StepContext(
        config=config,
        pool=pool,
        storage=None,  # type: ignore[arg-type]
        gallery=None,  # type: ignore[arg-type]
        binaries=None,  # type: ignore[arg-type]
        owner="test-worker",
        report_progress=lambda _: None,
    )
