"""Integers spelled in plain ASCII digits, as URLs, headers and files of ours spell them."""

from __future__ import annotations

# Enough for any 64-bit value. `int()` refuses strings of more than 4,300 digits with a
# ValueError of its own (and grows slow long before), so a hostile one never gets that far.
MAX_DIGITS = 19


def parse_digits(raw: str, max_digits: int = MAX_DIGITS) -> int | None:
    """`raw` as an integer if it is 1 to `max_digits` ASCII digits (no sign, no spaces, no other
    scripts' digits, all of which `int()` would take), else None."""
    if not 0 < len(raw) <= max_digits or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)
