"""Ladder planning: which rungs a source gets and at what size (pure, milliseconds)."""

from __future__ import annotations

import pytest

from videoforge.transcode.ladder import QUALITIES, Rung, plan_ladder
from videoforge.transcode.probe import MediaInfo

ALL = ["high", "medium", "low"]


def source(width: int, height: int, *, fps: float = 30.0) -> MediaInfo:
    return MediaInfo(
        duration=10.0,
        width=width,
        height=height,
        rotation=0,
        video_codec="h264",
        audio_codec="aac",
        has_audio=True,
        fps=fps,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        bit_rate=None,
    )


def sizes(rungs: list[Rung]) -> list[tuple[str, int, int]]:
    return [(r.quality, r.width, r.height) for r in rungs]


def test_plan_ladder_with_1080p_landscape_gives_three_rungs() -> None:
    rungs = plan_ladder(source(1920, 1080), ALL)
    assert sizes(rungs) == [("high", 1920, 1080), ("medium", 1280, 720), ("low", 854, 480)]
    assert [(r.maxrate, r.bufsize) for r in rungs] == [
        (6_000_000, 12_000_000),
        (3_000_000, 6_000_000),
        (1_200_000, 2_400_000),
    ]


def test_plan_ladder_with_720p_source_skips_the_taller_rung() -> None:
    assert sizes(plan_ladder(source(1280, 720), ALL)) == [
        ("medium", 1280, 720),
        ("low", 854, 480),
    ]


def test_plan_ladder_with_360p_source_asked_high_gives_one_rung_at_source_size() -> None:
    assert sizes(plan_ladder(source(640, 360), ["high"])) == [("high", 640, 360)]


def test_plan_ladder_with_source_below_every_rung_names_it_after_smallest_request() -> None:
    assert sizes(plan_ladder(source(320, 240), ALL)) == [("low", 320, 240)]
    assert sizes(plan_ladder(source(320, 240), ["high", "medium"])) == [("medium", 320, 240)]


def test_plan_ladder_with_portrait_source_scales_the_short_side() -> None:
    assert sizes(plan_ladder(source(1080, 1920), ALL)) == [
        ("high", 1080, 1920),
        ("medium", 720, 1280),
        ("low", 480, 854),
    ]


def test_plan_ladder_with_odd_dimensions_gives_even_ones() -> None:
    assert sizes(plan_ladder(source(641, 359), ALL)) == [("low", 640, 358)]
    assert sizes(plan_ladder(source(1281, 721), ALL)) == [
        ("medium", 1280, 720),
        ("low", 852, 480),
    ]


@pytest.mark.parametrize(
    ("width", "height"),
    [(3840, 2160), (1920, 1080), (1919, 1079), (1080, 1920), (1440, 1080), (720, 576), (2, 2)],
)
def test_plan_ladder_never_upscales_and_keeps_dimensions_even(width: int, height: int) -> None:
    rungs = plan_ladder(source(width, height), ALL)
    assert rungs
    for rung in rungs:
        assert rung.width <= width and rung.height <= height
        assert rung.width % 2 == 0 and rung.height % 2 == 0
        assert min(rung.width, rung.height) <= QUALITIES[rung.quality].height


def test_plan_ladder_with_4k_source_asked_one_quality_gives_only_it() -> None:
    assert sizes(plan_ladder(source(3840, 2160), ["medium"])) == [("medium", 1280, 720)]


def test_plan_ladder_orders_rungs_largest_first_whatever_the_request_order() -> None:
    assert [r.quality for r in plan_ladder(source(1920, 1080), ["low", "high", "low"])] == [
        "high",
        "low",
    ]


def test_plan_ladder_with_120_fps_source_caps_at_60() -> None:
    rung = plan_ladder(source(1280, 720, fps=120), ["low"])[0]
    assert rung.fps == 60
    assert rung.gop == 120


def test_plan_ladder_keeps_frame_rates_up_to_60() -> None:
    rung = plan_ladder(source(1280, 720, fps=30000 / 1001), ["low"])[0]
    assert rung.fps == pytest.approx(29.97, abs=0.01)
    assert rung.gop == 60


def test_plan_ladder_with_unknown_frame_rate_still_has_a_gop() -> None:
    assert plan_ladder(source(1280, 720, fps=0.0), ["low"])[0].gop == 60


def test_plan_ladder_with_unknown_quality_is_rejected() -> None:
    with pytest.raises(ValueError, match="ultra"):
        plan_ladder(source(1920, 1080), ["high", "ultra"])


def test_plan_ladder_with_no_quality_is_rejected() -> None:
    with pytest.raises(ValueError):
        plan_ladder(source(1920, 1080), [])
