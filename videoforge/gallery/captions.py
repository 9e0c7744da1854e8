"""Caption tracks: SRT or WebVTT in, validated cues with safe text out, WebVTT back.

Everything here is pure and linear in the input's size: a caption file is hostile until parsed,
and a quadratic scan of a 1 MiB line of `<` would stall whichever worker meets it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from videoforge.errors import BadRequest
from videoforge.support.webvtt import timestamp

MAX_CAPTION_BYTES = 1024 * 1024
ALLOWED_TAGS = ("b", "i", "u", "c", "v", "lang", "ruby", "rt")
MAX_LANGUAGE_TAG_LENGTH = 64

# Only these tags carry an annotation worth keeping (the speaker, the language).
_ANNOTATED_TAGS = ("v", "lang")
# Tags whose content is code or markup, never caption text: dropped with the tag.
_CONTENT_DROPPED_TAGS = ("script", "style", "iframe", "object", "template", "noscript", "textarea")
_KEPT_ENTITIES = ("amp", "lt", "gt", "nbsp", "lrm", "rlm")
_SKIPPED_BLOCKS = ("NOTE", "STYLE", "REGION")

_TIMESTAMP = re.compile(r"(?:(\d{1,9}):)?([0-5]\d):([0-5]\d)[.,](\d{3})")
_TIMESTAMP_TAG = re.compile(r"(?:\d{2,9}:)?[0-5]\d:[0-5]\d\.\d{3}")
# Every alternative is bounded by characters it cannot contain, so matching stays linear.
# A `<` starts a tag only before a name, `/`, `!` or a timestamp, so "1 < 2 > 0" stays text.
_TOKEN = re.compile(r"<(?:[A-Za-z/!][^<>]*|\d[\d:.]*)>|[^<>&]+|[<>&]")
_ENTITY = re.compile(r"&([a-z]{2,4});")
_BARE_AMPERSAND = re.compile(rf"&(?!(?:{'|'.join(_KEPT_ENTITIES)});)")
_OPEN_TAG = re.compile(r"([A-Za-z]+)((?:\.[A-Za-z0-9_-]+)*)(?:[ \t\n]+([^<>]*))?")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class CaptionError(BadRequest, ValueError):
    """Invalid caption file"""


class CaptionTooLarge(CaptionError):
    """Caption file too large"""

    status = 413


@dataclass(frozen=True)
class Cue:
    """One caption: seconds from the start of the video, and its text as `parse_captions` makes
    it (sanitised by `sanitise_cue_text`, LF line ends, no blank line): what `to_webvtt` takes."""

    start: float
    end: float
    text: str


def is_language_tag(tag: str) -> bool:
    """Whether `tag` has the shape of a BCP 47 language tag ("en", "pt-BR", "zh-Hant-TW")."""
    if not tag or len(tag) > MAX_LANGUAGE_TAG_LENGTH or not tag.isascii():
        return False
    parts = tag.lower().split("-")
    if not all(part.isalnum() and len(part) <= 8 for part in parts):
        return False
    primary, rest = parts[0], parts[1:]
    if not primary.isalpha() or len(primary) < 2:
        return False
    return _subtags_in_order(rest, extlang_allowed=len(primary) <= 3)


def normalise_language(tag: str) -> str:
    """A language tag in RFC 5646's case (`pt-br` -> `pt-BR`, `ZH-HANT-tw` -> `zh-Hant-TW`).

    Tags are case-insensitive: one spelling per tag keeps one language one track. The language
    and everything after a singleton (`-u-`, `-x-`) are lower case, a script title case and a
    region upper case.
    """
    parts = tag.lower().split("-")
    for i, part in enumerate(parts[1:], 1):
        if len(part) == 1:
            break
        if len(part) == 4 and part.isalpha():
            parts[i] = part.title()
        elif len(part) == 2 and part.isalpha():
            parts[i] = part.upper()
    return "-".join(parts)


def _subtags_in_order(parts: list[str], *, extlang_allowed: bool) -> bool:
    """RFC 5646's order after the language: extlang, script, region, variants, extensions, x-."""
    i = 0
    while extlang_allowed and i < min(len(parts), 3) and _is_alpha(parts[i], 3, 3):
        i += 1
    if i < len(parts) and _is_alpha(parts[i], 4, 4):
        i += 1
    if i < len(parts) and _is_region(parts[i]):
        i += 1
    while i < len(parts) and _is_variant(parts[i]):
        i += 1
    while i < len(parts) and len(parts[i]) == 1 and parts[i] != "x":
        i += 1
        start = i
        while i < len(parts) and len(parts[i]) >= 2:
            i += 1
        if i == start:
            return False
    if i < len(parts) and parts[i] == "x":
        return len(parts) > i + 1
    return i == len(parts)


def _is_alpha(part: str, shortest: int, longest: int) -> bool:
    return part.isalpha() and shortest <= len(part) <= longest


def _is_region(part: str) -> bool:
    return _is_alpha(part, 2, 2) or (len(part) == 3 and part.isdigit())


def _is_variant(part: str) -> bool:
    return len(part) >= 5 or (len(part) == 4 and part[0].isdigit())


def parse_captions(data: bytes, max_seconds: float | None) -> list[Cue]:
    """The cues of an SRT or WebVTT file, checked against a video `max_seconds` long (if known)."""
    lines = _text_lines(data)
    is_webvtt = lines[0].startswith("WEBVTT")
    if is_webvtt and lines[0] != "WEBVTT" and lines[0][6] not in " \t":
        raise _error_at(1, "the header must be 'WEBVTT', alone or followed by a space or tab")
    blocks = _blocks(lines)
    if is_webvtt:
        next(blocks, None)  # the header and its metadata lines
    cues: list[Cue] = []
    for number, block in blocks:
        if is_webvtt and block[0].split(maxsplit=1)[0] in _SKIPPED_BLOCKS:
            continue
        line, cue = _parse_cue(number, block)
        _check_cue(line, cue, cues[-1] if cues else None, max_seconds)
        cues.append(cue)
    if not cues:
        raise _no_cue(lines)
    return cues


def _text_lines(data: bytes) -> list[str]:
    """The file's lines, once it is known to be text: bounded, UTF-8, free of control bytes."""
    if len(data) > MAX_CAPTION_BYTES:
        raise CaptionTooLarge(f"caption file is over {MAX_CAPTION_BYTES} bytes")
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _error_at(data.count(b"\n", 0, error.start) + 1, "not UTF-8 text") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    control = _CONTROL.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        raise _error_at(line, f"control character U+{ord(control.group()):04X}: not text")
    return text.split("\n")


def _blocks(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Runs of non-blank lines, each with the (1-based) number of its first line."""
    block: list[str] = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            block.append(line)
        elif block:
            yield number - len(block), block
            block = []
    if block:
        yield len(lines) + 1 - len(block), block


def _parse_cue(number: int, block: list[str]) -> tuple[int, Cue]:
    """A cue from its block (an optional identifier or SRT index line, timings, then text), with
    the number of its timing line."""
    timing_at = 0 if "-->" in block[0] else 1
    if timing_at >= len(block) or "-->" not in block[timing_at]:
        raise _error_at(number, "expected a cue timing 'start --> end'")
    line = number + timing_at
    start_text, _, end_and_settings = block[timing_at].partition("-->")
    end_text = end_and_settings.split(maxsplit=1)[0] if end_and_settings.strip() else ""
    start, end = _seconds(line, start_text.strip()), _seconds(line, end_text)
    text = _tidy_lines(sanitise_cue_text("\n".join(block[timing_at + 1 :])))
    return line, Cue(start=start, end=end, text=text)


def _seconds(line: int, stamp: str) -> float:
    match = _TIMESTAMP.fullmatch(stamp)
    if not match:
        raise _error_at(line, f"bad timestamp {stamp[:40]!r}, expected HH:MM:SS.mmm")
    hours, minutes, seconds, millis = (int(part or 0) for part in match.groups())
    return (((hours * 60 + minutes) * 60 + seconds) * 1000 + millis) / 1000


def _check_cue(line: int, cue: Cue, previous: Cue | None, max_seconds: float | None) -> None:
    if cue.end <= cue.start:
        raise _error_at(line, "the cue must end after it starts")
    if previous is not None and cue.start < previous.start:
        raise _error_at(line, "the cue starts before the previous one: cues must be in order")
    # A second of slack: caption tools round, and the probed duration is rounded too.
    if max_seconds is not None and cue.end > max_seconds + 1:
        raise _error_at(line, f"the cue ends at {cue.end:.3f}s, after the video ({max_seconds}s)")


def _error_at(line: int, what: str) -> CaptionError:
    return CaptionError(f"line {line}: {what}", details={"line": line})


def _no_cue(lines: list[str]) -> CaptionError:
    """No line to name: say how many were read, and what a cue looks like."""
    count = len(lines) - 1 if lines[-1] == "" else len(lines)  # a final line end starts none
    counted = f"{count} line" + ("" if count == 1 else "s")
    what = "a cue is a timing line 'start --> end', then its text"
    return CaptionError(f"no cue found (the file has {counted}): {what}", details={"lines": count})


def sanitise_cue_text(text: str) -> str:
    """Cue text keeping only WebVTT's own tags and entities; all else is dropped or escaped."""
    out: list[str] = []
    open_tags: list[str] = []
    open_counts: Counter[str] = Counter()
    tokens = _TOKEN.finditer(text)
    for token in tokens:
        piece = token.group()
        if piece == "&":
            entity = _ENTITY.match(text, token.start())
            kept = entity is not None and entity.group(1) in _KEPT_ENTITIES
            out.append("&" if kept else "&amp;")
        elif piece in ("<", ">"):
            out.append("&lt;" if piece == "<" else "&gt;")
        elif piece[0] != "<":
            out.append(piece)
        elif piece.startswith("<!--"):
            _skip_comment(piece, text, token.end(), tokens)
        elif piece.startswith("</"):
            out.append(_close_tag(piece[2:-1].strip().lower(), open_tags, open_counts))
        else:
            out.append(_open_tag(piece[1:-1], text, tokens, open_tags, open_counts))
    out.extend(f"</{name}>" for name in reversed(open_tags))
    return "".join(out)


def _skip_comment(piece: str, text: str, after: int, tokens: Iterator[re.Match[str]]) -> None:
    """Drop the comment's tokens, up to and with the first `-->` (a comment in one tag is done)."""
    if piece.endswith("-->"):
        return
    end = text.find("-->", after)
    # An unclosed comment hides the rest, as a browser would; scanning on would also be quadratic.
    stop = len(text) if end < 0 else end + 3
    for token in tokens:
        if token.end() >= stop:
            return


def _close_tag(name: str, open_tags: list[str], open_counts: Counter[str]) -> str:
    """Closers for `name` and whatever opened inside it; nothing if `name` is not open."""
    if not open_counts[name]:
        return ""
    closers: list[str] = []
    while open_tags:
        inner = open_tags.pop()
        open_counts[inner] -= 1
        closers.append(f"</{inner}>")
        if inner == name:
            break
    return "".join(closers)


def _open_tag(
    body: str,
    text: str,
    tokens: Iterator[re.Match[str]],
    open_tags: list[str],
    open_counts: Counter[str],
) -> str:
    """A kept tag rewritten from its parts (so no stray attribute survives), or nothing."""
    if _TIMESTAMP_TAG.fullmatch(body):
        return f"<{body}>"
    match = _OPEN_TAG.fullmatch(body)
    name = match.group(1).lower() if match else ""
    if name in _CONTENT_DROPPED_TAGS:
        _skip_element(name, text, tokens)
    if match is None or name not in ALLOWED_TAGS:
        return ""
    classes, annotation = match.group(2), (match.group(3) or "").strip()
    open_tags.append(name)
    open_counts[name] += 1
    if name in _ANNOTATED_TAGS and annotation:
        return f"<{name}{classes} {_escape_ampersands(' '.join(annotation.split()))}>"
    return f"<{name}{classes}>"


def _skip_element(name: str, text: str, tokens: Iterator[re.Match[str]]) -> None:
    """Drop tokens up to and with `</name>`, or all that are left when it never closes."""
    closer = re.compile(rf"</{name}\s*>", re.IGNORECASE)
    for token in tokens:
        if closer.fullmatch(token.group()):
            return


def _escape_ampersands(annotation: str) -> str:
    """`annotation` with each `&` that starts no kept entity escaped (it holds no `<` or `>`)."""
    return _BARE_AMPERSAND.sub("&amp;", annotation)


def to_webvtt(cues: Sequence[Cue]) -> str:
    """A WebVTT file of `cues` as `parse_captions` returns them, written as they are: their text
    is already sanitised, with LF line ends and no blank line (nothing in it ends a cue)."""
    parts = ["WEBVTT\n\n"]
    for cue in cues:
        parts.append(f"{timestamp(cue.start)} --> {timestamp(cue.end)}\n{cue.text}\n\n")
    return "".join(parts)


def _tidy_lines(text: str) -> str:
    """A blank line ends a cue in WebVTT, so none may stay inside one; nor the spaces a
    dropped tag leaves at a line's end (`world <img src=x>` is `world`)."""
    return "\n".join(line.rstrip() for line in text.split("\n") if line.strip())
