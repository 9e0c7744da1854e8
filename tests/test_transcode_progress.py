"""Progress parsing and throttling (pure, milliseconds)."""

from __future__ import annotations

import pytest

from videoforge.transcode.progress import ProgressParser, ProgressThrottle, out_time

# A block as ffmpeg 6 writes it with `-progress pipe:1`.
BLOCK = """\
frame=45
fps=43.05
stream_0_0_q=28.0
bitrate=2669.1kbits/s
total_size=999385
out_time_us=1500000
out_time_ms=1500000
out_time=00:00:01.500000
dup_frames=0
drop_frames=0
speed=1.43x
"""


def feed(parser: ProgressParser, text: str) -> list[float | None]:
    return [parser.feed(line) for line in text.splitlines()]


def test_progress_parser_gives_a_fraction_at_the_end_of_each_block() -> None:
    parser = ProgressParser(duration=3.0)
    results = feed(parser, BLOCK + "progress=continue\n")
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] == pytest.approx(0.5)
    assert not parser.ended


def test_progress_parser_marks_the_last_block_as_ended() -> None:
    parser = ProgressParser(duration=3.0)
    feed(parser, BLOCK.replace("1500000", "3000000") + "progress=end\n")
    assert parser.ended


def test_progress_parser_while_out_time_is_unknown_gives_nothing() -> None:
    parser = ProgressParser(duration=3.0)
    assert feed(parser, "out_time_us=N/A\nout_time=N/A\nprogress=continue\n")[-1] is None


def test_progress_parser_clamps_to_zero_and_one() -> None:
    parser = ProgressParser(duration=3.0)
    assert feed(parser, "out_time_us=-23220\nprogress=continue")[-1] == 0.0
    assert feed(parser, "out_time_us=3100000\nprogress=continue")[-1] == 1.0


def test_progress_parser_starts_each_block_afresh() -> None:
    parser = ProgressParser(duration=4.0)
    feed(parser, "out_time_us=1000000\nprogress=continue")
    assert feed(parser, "frame=3\nprogress=continue")[-1] is None


def test_progress_parser_ignores_lines_that_are_not_key_values() -> None:
    assert ProgressParser(duration=3.0).feed("garbage\n") is None


@pytest.mark.parametrize(
    ("block", "seconds"),
    [
        ({"out_time_us": "2500000"}, 2.5),
        ({"out_time_ms": "2500000"}, 2.5),
        ({"out_time": "01:02:03.500000"}, 3723.5),
        ({"out_time": "-00:00:00.023220"}, -0.02322),
        ({"out_time_us": "N/A", "out_time": "N/A"}, None),
        ({}, None),
    ],
)
def test_out_time_reads_every_spelling(block: dict[str, str], seconds: float | None) -> None:
    assert out_time(block) == (pytest.approx(seconds) if seconds is not None else None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_progress_throttle_reports_at_most_once_per_interval() -> None:
    seen: list[float] = []
    clock = Clock()
    throttle = ProgressThrottle(seen.append, interval=1.0, clock=clock)
    await throttle.report(0.1)
    clock.now += 0.5
    await throttle.report(0.2)
    clock.now += 0.6
    await throttle.report(0.3)
    assert seen == [0.1, 0.3]


async def test_progress_throttle_only_reports_increasing_values() -> None:
    seen: list[float] = []
    clock = Clock()
    throttle = ProgressThrottle(seen.append, interval=0, clock=clock)
    for value in (0.2, 0.1, 0.2, 0.4):
        await throttle.report(value)
    assert seen == [0.2, 0.4]


async def test_progress_throttle_never_reports_done_before_the_final_report() -> None:
    seen: list[float] = []
    clock = Clock()
    throttle = ProgressThrottle(seen.append, interval=1.0, clock=clock)
    await throttle.report(1.0)
    await throttle.report(1.0, final=True)  # not throttled, although within the interval
    assert seen == [0.99, 1.0]


async def test_progress_throttle_awaits_async_callbacks() -> None:
    seen: list[float] = []

    async def callback(value: float) -> None:
        seen.append(value)

    await ProgressThrottle(callback).report(0.5)
    assert seen == [0.5]
