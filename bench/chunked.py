"""Chunked transcoding: its cost on one worker, and what spreading chunks over workers gains.

    .venv/bin/python bench/chunked.py                 # 10 min 1080p30, 60 s chunks (~45 min)
    .venv/bin/python bench/chunked.py --quick         # 2 min 720p30, 20 s chunks (~4 min)
    .venv/bin/python bench/chunked.py --seconds 300 --size 1920x1080 --chunk 60
    .venv/bin/python bench/chunked.py --quick --workers 1,2    # chunked jobs on 1, then 2 workers
    .venv/bin/python bench/chunked.py --workers 1,2,4,8        # on a machine with 8 cores or more

The source is generated (testsrc2 with per-frame grain and a sine tone, as bench/transcode.py
makes it). Without `--workers`, `pipeline.transcode` makes the whole ladder from it twice per
repeat, in one pass and chunk by chunk, in alternating order so drift hits both sides alike; the
figure is the median of the paired (chunked / one pass) wall and CPU ratios. The goal for
chunking's overhead on one worker is at most 1.10.

With `--workers`, the source goes through the API as a chunked job once per worker count and
repeat, on worker processes pinned to a core each (bench/chunked_workers.py): wall time from
the confirm to COMPLETED, speed-up and efficiency against the smallest count (goal: efficiency
at least 0.8), and the time to first play against one chunk's encode (goal: at most 1.5x).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]

from videoforge.config import Config, TranscodeConfig  # noqa: E402
from videoforge.transcode.binaries import Binaries, locate_binaries  # noqa: E402
from videoforge.transcode.pipeline import transcode  # noqa: E402


def _load(name: str, file: str) -> ModuleType:
    """Another bench script as a module (bench/http.py shadows `http` when run as a path)."""
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_transcode = _load("bench_transcode", "transcode.py")
bench_chunked_workers = _load("bench_chunked_workers", "chunked_workers.py")


@dataclass(frozen=True)
class Side:
    name: str
    chunk_seconds: int


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # ffmpeg's, reaped by this process


def measure(side: Side, source: Path, outdir: Path, binaries: Binaries) -> Timing:
    """One transcode of the whole ladder, timed: wall clock and the ffmpeg children's CPU."""
    config = dataclasses.replace(TranscodeConfig(), chunk_seconds=side.chunk_seconds)
    shutil.rmtree(outdir, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    asyncio.run(transcode(binaries, config, source, outdir, bench_transcode.QUALITIES))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Timing(wall, cpu)


def compare_one_pass(
    source: Path, base_dir: Path, binaries: Binaries, chunk: int, repeats: int
) -> None:
    """One pass against chunks of `chunk` s, `repeats` pairs in alternating order."""
    one_pass, chunked = Side("one pass", 0), Side(f"chunks of {chunk} s", chunk)
    ratios: list[tuple[float, float]] = []
    for repeat in range(repeats):
        order = (one_pass, chunked) if repeat % 2 == 0 else (chunked, one_pass)
        timings = {side.name: measure(side, source, base_dir / "out", binaries) for side in order}
        for name, timing in timings.items():
            figures = f"{timing.wall_s:.1f} s wall, {timing.cpu_s:.1f} s CPU"
            print(f"  repeat {repeat + 1}: {name}: {figures}")
        a, b = timings[one_pass.name], timings[chunked.name]
        ratios.append((b.wall_s / a.wall_s, b.cpu_s / a.cpu_s))
    wall = statistics.median(r[0] for r in ratios)
    cpu = statistics.median(r[1] for r in ratios)
    print(f"chunked / one pass: wall {wall:.3f}, CPU {cpu:.3f} (goal: at most 1.10)")


def worker_counts(text: str) -> list[int]:
    """`1,2,4` as [1, 2, 4]: positive, without repeats."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"counts must be positive and distinct: {text!r}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="2 min 720p, 20 s chunks")
    parser.add_argument("--seconds", type=float, help="source length (default 600)")
    parser.add_argument("--size", help="source size (default 1920x1080)")
    parser.add_argument("--chunk", type=int, help="chunk_seconds (default 60)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="pairs of runs, or jobs per worker count (default 1)"
    )
    parser.add_argument(
        "--workers",
        type=worker_counts,
        help="worker process counts, e.g. 1,2: chunked jobs spread over them instead",
    )
    args = parser.parse_args()
    seconds = args.seconds or (120.0 if args.quick else 600.0)
    size = args.size or ("1280x720" if args.quick else "1920x1080")
    chunk = args.chunk or (20 if args.quick else 60)
    binaries = locate_binaries(Config())
    base_dir = Path(tempfile.mkdtemp(prefix="vf-chunked-bench-"))
    # The embedded PostgreSQL (--workers) runs as another system user: it must reach this.
    base_dir.chmod(0o755)
    try:
        settings = bench_transcode.Settings(
            quick=args.quick,
            repeats=args.repeat,
            seconds=seconds,
            noise=bench_transcode.CLIP_NOISE,
            base_dir=base_dir,
            binaries=binaries,
            readme=False,
        )
        cores = bench_transcode.cores()
        version = bench_transcode.bench_http._source_version()
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"machine: {cores} cores, load average {load}; videoforge {version}")
        print(f"source: {seconds:g} s of {size} at 30 fps, grain, a tone; chunks of {chunk} s")
        source = bench_transcode.generate_clip(
            settings, "source.mp4", size, seconds, settings.noise
        )
        if args.workers:
            runs = bench_chunked_workers.measure(
                base_dir, source, args.workers, chunk, args.repeat, settings.timeout
            )
            bench_chunked_workers.report(runs)
        else:
            compare_one_pass(source, base_dir, binaries, chunk, args.repeat)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
