"""Which errors fail a job for good and which are tried again: one table, read in order."""

from __future__ import annotations

import asyncpg
import pytest

from videoforge.errors import (
    BadRequest,
    ObjectNotFound,
    ServiceUnavailable,
    StorageError,
    StorageUnavailable,
)
from videoforge.jobs.context import JobFailed, failing, job_failed
from videoforge.jobs.failures import RULES, error_text, is_transient, rule_for
from videoforge.jobs.transfers import Deadline, TransferRetry
from videoforge.storage import ObjectChanged
from videoforge.transcode.probe import InvalidMedia
from videoforge.transcode.runner import TranscodeFailed, TranscodeTimedOut


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (InvalidMedia("No video stream found"), False),
        (TranscodeFailed("ffmpeg exited with status 1: boom"), False),
        (TranscodeTimedOut(), False),
        (ObjectNotFound(), False),
        (ObjectChanged(), False),
        (StorageError("503 Slow Down"), True),
        (StorageUnavailable("connection refused"), True),
        (ServiceUnavailable("database down"), True),
        (asyncpg.PostgresError("deadlock detected"), True),
        (ConnectionResetError("reset by peer"), True),
        (TimeoutError(), True),
        (BadRequest("Invalid storage key"), False),  # named by no rule
        (ValueError("a bug of ours"), False),
    ],
)
def test_an_error_is_transient_as_the_table_says(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_no_rule_is_hidden_behind_an_earlier_one() -> None:
    # Read in order: an earlier rule of a base class would decide for a later subclass.
    for index, rule in enumerate(RULES):
        assert not [earlier for earlier in RULES[:index] if issubclass(rule.error, earlier.error)]


def test_an_error_no_rule_names_has_no_rule() -> None:
    assert rule_for(KeyError("x")) is None


def test_invalid_media_is_as_permanent_as_it_says_it_is() -> None:
    rule = rule_for(InvalidMedia())
    assert rule is not None and rule.retryable is InvalidMedia.retryable


@pytest.mark.parametrize(
    ("step", "error", "text"),
    [
        ("Failed to download source video", ObjectNotFound(), "404 Not Found"),
        ("Failed to download source video", ObjectChanged(), "The uploaded file changed"),
        ("Metadata extraction failed", InvalidMedia("No video stream found"), "No video stream"),
        ("Transcoding failed", TranscodeTimedOut(), "timed out"),
        ("Failed to upload outputs", StorageError("503 Slow Down"), "503 Slow Down"),
        ("Database error", asyncpg.PostgresError("deadlock detected"), "deadlock detected"),
    ],
)
def test_error_text_is_the_step_and_what_went_wrong(step: str, error: Exception, text: str) -> None:
    assert error_text(step, error).startswith(f"{step}: {text}")


def test_a_timed_out_transcode_fails_the_job_for_good() -> None:
    failed = job_failed("Transcoding failed", TranscodeTimedOut())
    assert (failed.message, failed.retryable) == ("Transcoding failed: timed out", False)


async def test_a_step_fails_the_job_with_what_it_reports() -> None:
    with pytest.raises(JobFailed) as caught, failing("Failed to upload outputs", OSError):
        raise ConnectionResetError("reset by peer")
    assert caught.value.message == "Failed to upload outputs: reset by peer"
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, ConnectionResetError)


async def test_a_step_leaves_what_it_does_not_report_to_the_worker() -> None:
    with pytest.raises(KeyError), failing("Failed to upload outputs", OSError):
        raise KeyError("a bug of ours")


async def test_a_transfer_is_not_retried_in_place_on_a_permanent_error() -> None:
    calls = 0

    async def transfer() -> None:
        nonlocal calls
        calls += 1
        raise ObjectNotFound()

    with pytest.raises(ObjectNotFound):
        await Deadline(TransferRetry(budget_seconds=5, backoff_seconds=(0.01,))).run(transfer, "t")
    assert calls == 1


async def test_a_transfer_is_retried_in_place_on_a_transient_error() -> None:
    calls = 0

    async def transfer() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise StorageError("503 Slow Down")
        return "done"

    retry = TransferRetry(budget_seconds=5, backoff_seconds=(0.01,))
    assert await Deadline(retry).run(transfer, "t") == "done"
    assert calls == 3
