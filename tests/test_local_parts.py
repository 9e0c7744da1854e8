"""The local backend's assembly of parts: the kernel's copy, and reading and writing where the
kernel cannot copy (another file system, an old kernel)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from videoforge.storage import local

PARTS = [b"a" * 1000, b"b" * 3000, b"c" * 10]


def assemble(tmp_path: Path) -> bytes:
    out_path = tmp_path / "whole"
    with out_path.open("wb") as out:
        for number, data in enumerate(PARTS):
            part = tmp_path / f"part{number}"
            part.write_bytes(data)
            with part.open("rb") as src:
                local._append(src, out, len(data))
    return out_path.read_bytes()


def test_parts_are_appended_in_order(tmp_path: Path) -> None:
    assert assemble(tmp_path) == b"".join(PARTS)


def test_without_the_kernels_copy_the_parts_are_read_and_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    assert assemble(tmp_path) == b"".join(PARTS)


def test_a_copy_cut_short_is_finished_by_reading_and_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.copy_file_range
    calls = []

    def once_then_refuse(src: int, dst: int, count: int) -> int:
        calls.append(count)
        if len(calls) % 2:
            return real(src, dst, min(count, 7))  # a short copy, then the kernel gives up
        raise OSError(errno.EINVAL, "not here")

    monkeypatch.setattr(os, "copy_file_range", once_then_refuse)
    assert assemble(tmp_path) == b"".join(PARTS)
