"""Caption tracks: SRT and WebVTT parsing, the checks on cues, text sanitising, WebVTT output."""

from __future__ import annotations

import pytest

from videoforge.errors import BadRequest, PayloadTooLarge
from videoforge.gallery.captions import (
    MAX_CAPTION_BYTES,
    CaptionError,
    CaptionTooLarge,
    Cue,
    is_language_tag,
    parse_captions,
    sanitise_cue_text,
    to_webvtt,
)
from videoforge.support.webvtt import timestamp

SRT = (
    "1\n00:00:01,000 --> 00:00:02,500\nHello <b>world</b>\n\n"
    "2\n00:00:03,000 --> 00:01:04,250\nline one\nline two\n"
)
SRT_AS_WEBVTT = (
    "WEBVTT\n\n"
    "00:00:01.000 --> 00:00:02.500\nHello <b>world</b>\n\n"
    "00:00:03.000 --> 00:01:04.250\nline one\nline two\n\n"
)
WEBVTT = (
    "WEBVTT - a title\nKind: captions\nLanguage: en\n\n"
    "NOTE a comment\nover two lines\n\n"
    "STYLE\n::cue { color: yellow }\n\n"
    "REGION\nid:top width:40%\n\n"
    "intro\n00:01.000 --> 00:02.000 align:start line:0 position:10%\n<v Mary>Hi there</v>\n\n"
    "NOTE between cues\n\n"
    "2\n01:00:00.000 --> 01:00:01.500\t region:top\n<c.yellow>late</c>\n"
)
WEBVTT_CUES = [
    Cue(start=1.0, end=2.0, text="<v Mary>Hi there</v>"),
    Cue(start=3600.0, end=3601.5, text="<c.yellow>late</c>"),
]


def cue_file(*cues: str, header: str = "") -> bytes:
    return (header + "\n\n".join(cues) + "\n").encode()


def no_cue_found(lines: int) -> str:
    counted = "1 line" if lines == 1 else f"{lines} lines"
    what = "a cue is a timing line 'start --> end', then its text"
    return f"no cue found (the file has {counted}): {what}"


def caption_error(data: bytes, max_seconds: float | None = None) -> str:
    with pytest.raises(CaptionError) as raised:
        parse_captions(data, max_seconds)
    return str(raised.value)


@pytest.mark.parametrize(
    "data",
    [
        SRT.encode(),
        SRT.replace("\n", "\r\n").encode(),
        b"\xef\xbb\xbf" + SRT.encode(),
        b"\xef\xbb\xbf" + SRT.replace("\n", "\r\n").encode(),
        SRT.replace("1\n", "", 1).replace("2\n00", "00").encode(),
        ("\n\n" + SRT.replace("\n\n", "\n \t\n\n")).encode(),
    ],
    ids=["lf", "crlf", "bom", "bom-crlf", "no-index-lines", "extra-blank-lines"],
)
def test_srt_converts_to_webvtt_with_dots_and_lf(data: bytes) -> None:
    assert to_webvtt(parse_captions(data, None)) == SRT_AS_WEBVTT


def test_srt_cues_carry_seconds_and_text() -> None:
    assert parse_captions(SRT.encode(), 65) == [
        Cue(start=1.0, end=2.5, text="Hello <b>world</b>"),
        Cue(start=3.0, end=64.25, text="line one\nline two"),
    ]


def test_srt_timing_line_settings_are_left_out_of_the_text() -> None:
    data = b"1\n00:00:01,000 --> 00:00:02,000 X1:40 X2:600 Y1:20 Y2:50\nhi\n"
    assert parse_captions(data, None) == [Cue(start=1.0, end=2.0, text="hi")]


@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_webvtt_skips_note_style_region_and_drops_identifiers_and_settings(line_end: str) -> None:
    data = WEBVTT.replace("\n", line_end).encode()
    assert parse_captions(data, 3601) == WEBVTT_CUES


@pytest.mark.parametrize("header", ["WEBVTT", "WEBVTT title", "WEBVTT\ttitle"])
def test_webvtt_header_may_carry_text_after_a_space_or_tab(header: str) -> None:
    data = f"{header}\n\n00:00.000 --> 00:01.000\nhi\n".encode()
    assert parse_captions(data, None) == [Cue(start=0.0, end=1.0, text="hi")]


def test_webvtt_round_trip_keeps_cues() -> None:
    first = parse_captions(WEBVTT.encode(), None)
    written = to_webvtt(first)
    assert written == (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\n<v Mary>Hi there</v>\n\n"
        "01:00:00.000 --> 01:00:01.500\n<c.yellow>late</c>\n\n"
    )
    assert parse_captions(written.encode(), None) == first


def test_a_line_left_empty_by_dropped_markup_is_not_written_as_a_blank_line() -> None:
    data = b"00:00.000 --> 00:01.250\none\n<script>x</script>\n<iframe>\ny</iframe>\nthree\n"
    assert to_webvtt(parse_captions(data, None)) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\none\nthree\n\n"
    )


def test_cue_text_that_reads_as_a_timing_line_is_written_escaped_and_parses_back_the_same() -> None:
    data = b"00:00.000 --> 00:01.000\na --> b\n00:00:05.000 --> 00:00:06.000\n<script>x\n"
    cues = parse_captions(data, None)
    assert cues == [Cue(start=0.0, end=1.0, text="a --&gt; b\n00:00:05.000 --&gt; 00:00:06.000")]
    assert parse_captions(to_webvtt(cues).encode(), None) == cues


def test_to_webvtt_of_no_cues_is_a_bare_header() -> None:
    assert to_webvtt([]) == "WEBVTT\n\n"


@pytest.mark.parametrize(
    "tag",
    ["en", "pt-BR", "es-419", "zh-Hant-TW", "EN-us", "de-CH-1901", "sl-rozaj-biske", "en-x-twain"],
)
def test_language_tag_of_bcp47_shape_is_accepted(tag: str) -> None:
    assert is_language_tag(tag)


@pytest.mark.parametrize(
    "tag",
    [
        "",
        "e",
        "english-language-tag-too-long",
        "en_US",
        "pt-",
        "--",
        "-en",
        "en--US",
        "en US",
        "1en",
        "en-US-US",
        "en-x",
        "en-a",
        "fr-toolongsubtag",
        "é",
        "en-" + "-".join(["abcde"] * 20),
    ],
)
def test_language_tag_of_other_shape_is_rejected(tag: str) -> None:
    assert not is_language_tag(tag)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>hi", "hi"),
        ("a<SCRIPT type=x>alert('<b>')</Script >b", "ab"),
        ("a<script>never closed", "a"),
        ("<style>p { color: red }</style>x", "x"),
        ("<img src=x onerror=alert(1)>", ""),
        ('<font color="red">red</font>', "red"),
        ("<a href='javascript:alert(1)'>link</a>", "link"),
        ("a<!-- x -->b", "ab"),
        ("a<!-- x > y -->b", "ab"),
        ("a<!--->b", "ab"),
        ("a <!-- no end", "a &lt;!-- no end"),
        ("<b onclick=alert(1)>bold</b>", "<b>bold</b>"),
        ('<i style="x">it</i>', "<i>it</i>"),
        ("<B>loud</B>", "<b>loud</b>"),
        ("<b><i>x</b>", "<b><i>x</i></b>"),
        ("<b><u>unclosed", "<b><u>unclosed</u></b>"),
        ("</i>stray close", "stray close"),
        ("<b>a</i>b</b>", "<b>ab</b>"),
        ("1 < 2 and 3 > 2", "1 &lt; 2 and 3 &gt; 2"),
        ("I <3 you > all", "I &lt;3 you &gt; all"),
        ("<>", "&lt;&gt;"),
        ("<99:99>gone", "gone"),
        ("<<b>x", "&lt;<b>x</b>"),
        ("a <b", "a &lt;b"),
        ("a --> b", "a --&gt; b"),
        ("<c.yellow.bg_blue>x</c>", "<c.yellow.bg_blue>x</c>"),
        ('<c.x"y>bad class</c>', "bad class"),
        ("<v Mary>Hi</v>", "<v Mary>Hi</v>"),
        ("<v.loud  Mary   Ann>Hi", "<v.loud Mary Ann>Hi</v>"),
        ("<v Tom & Jerry>Hi</v>", "<v Tom &amp; Jerry>Hi</v>"),
        ("<lang en>hello</lang>", "<lang en>hello</lang>"),
        ("<ruby>漢<rt>kan</rt></ruby>", "<ruby>漢<rt>kan</rt></ruby>"),
        ("a <00:01.000>b <01:00:02.500>c", "a <00:01.000>b <01:00:02.500>c"),
        ("&amp; &lt; &gt; &nbsp; &lrm; &rlm;", "&amp; &lt; &gt; &nbsp; &lrm; &rlm;"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("&copy; &#60; &AMP;", "&amp;copy; &amp;#60; &amp;AMP;"),
        ("&", "&amp;"),
    ],
)
def test_sanitise_keeps_webvtt_markup_and_drops_or_escapes_the_rest(
    text: str, expected: str
) -> None:
    assert sanitise_cue_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "<b>Tom & Jerry</b> <v A & B>x",
        "<<<>>> --> <!-- x",
        "<script>x</script><i>y",
        "&amp;amp; &lt;script&gt;",
        "1 < 2 > 0 <3",
    ],
)
def test_sanitise_is_idempotent(text: str) -> None:
    once = sanitise_cue_text(text)
    assert sanitise_cue_text(once) == once


def test_cue_text_is_sanitised_when_parsed() -> None:
    data = cue_file("00:00:01,000 --> 00:00:02,000\n<script>alert(1)</script>Hi <img src=x>&")
    assert parse_captions(data, None) == [Cue(start=1.0, end=2.0, text="Hi &amp;")]


def test_a_tag_dropped_at_a_lines_end_leaves_no_trailing_space() -> None:
    data = cue_file("00:00:01,000 --> 00:00:02,000\nHello <b>world</b> <img src=x onerror=y>\nbye ")
    assert parse_captions(data, None) == [Cue(start=1.0, end=2.0, text="Hello <b>world</b>\nbye")]


def test_script_spanning_lines_of_a_cue_is_dropped() -> None:
    data = cue_file("00:00:01,000 --> 00:00:02,000\n<script>\nalert(1)\n</script>\nshown")
    assert parse_captions(data, None) == [Cue(start=1.0, end=2.0, text="shown")]


@pytest.mark.parametrize(
    "text",
    [
        "<" * MAX_CAPTION_BYTES,
        "<a" * (MAX_CAPTION_BYTES // 2),
        "<!-- >" * (MAX_CAPTION_BYTES // 6),
        "<b>" * (MAX_CAPTION_BYTES // 6) + "</i>" * (MAX_CAPTION_BYTES // 8),
        "&" * MAX_CAPTION_BYTES,
    ],
    ids=["lt", "lt-letter", "comment-starts", "deep-nesting", "ampersands"],
)
def test_sanitise_of_a_mebibyte_of_hostile_markup_completes(text: str) -> None:
    assert "<" not in sanitise_cue_text(text).replace("<b>", "").replace("</b>", "")


def test_mebibyte_line_of_lt_parses_as_escaped_text() -> None:
    timing = b"00:00:01,000 --> 00:00:02,000\n"
    data = timing + b"<" * (MAX_CAPTION_BYTES - len(timing))
    [cue] = parse_captions(data, None)
    assert cue.text == "&lt;" * (MAX_CAPTION_BYTES - len(timing))


def test_mebibyte_timing_line_of_lt_is_rejected() -> None:
    assert caption_error(b"00:00:01,000 --> " + b"<" * (MAX_CAPTION_BYTES - 17)).startswith(
        "line 1: bad timestamp"
    )


def test_file_of_exactly_the_limit_is_read() -> None:
    timing = b"00:00:01,000 --> 00:00:02,000\n"
    data = timing + b"a" * (MAX_CAPTION_BYTES - len(timing))
    assert len(parse_captions(data, None)) == 1


def test_file_over_the_limit_is_too_large() -> None:
    with pytest.raises(CaptionTooLarge) as raised:
        parse_captions(b"a" * (MAX_CAPTION_BYTES + 1), None)
    assert raised.value.status == PayloadTooLarge.status


def test_caption_errors_are_bad_requests_and_value_errors() -> None:
    with pytest.raises(CaptionError) as raised:
        parse_captions(b"", None)
    assert isinstance(raised.value, BadRequest)
    assert isinstance(raised.value, ValueError)
    assert raised.value.status == 400
    assert raised.value.to_json() == {"error": no_cue_found(0), "details": {"lines": 0}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1: not UTF-8 text"),
        (b"1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n", "line 3: not UTF-8 text"),
        (b"1\n00:00:01,000 --> 00:00:02,000\na\x00b\n", "line 3: control character U+0000"),
        (b"\x00\x00\x00\x00", "line 1: control character U+0000"),
        (b"WEBVTT\n\n00:01.000 --> 00:02.000\n\x1b[31mred\n", "line 4: control character U+001B"),
    ],
    ids=["png", "latin-1", "nul-in-cue", "nul-only", "escape-sequence"],
)
def test_binary_or_non_utf8_data_is_rejected_naming_the_line(data: bytes, message: str) -> None:
    assert caption_error(data).startswith(message)


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"", 0),
        (b"\xef\xbb\xbf", 0),
        (b"\n\r\n  \n", 3),
        (b"WEBVTT", 1),
        (b"WEBVTT\n", 1),
        (b"WEBVTT\n\nNOTE nothing here\n\nSTYLE\n::cue {}\n", 6),
    ],
    ids=["empty", "bom-only", "blank-lines", "header-no-lf", "header-only", "webvtt-notes-only"],
)
def test_file_without_cues_is_rejected_saying_how_many_lines_it_has(
    data: bytes, lines: int
) -> None:
    assert caption_error(data) == no_cue_found(lines)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            cue_file("00:00:05,000 --> 00:00:06,000\na", "1\n00:00:04,000 --> 00:00:07,000\nb"),
            "line 5: the cue starts before the previous one",
        ),
        (
            cue_file("00:00:01,000 --> 00:00:01,000\na", header="1\n"),
            "line 2: the cue must end after it starts",
        ),
        (cue_file("00:00:02,000 --> 00:00:01,000\na"), "line 1: the cue must end after it starts"),
        (cue_file("00:00:01,000 -> 00:00:02,000\na"), "line 1: expected a cue timing"),
        (cue_file("just text\nmore text"), "line 1: expected a cue timing"),
        (cue_file("00:00:01 --> 00:00:02\na"), "line 1: bad timestamp '00:00:01'"),
        (cue_file("00:00:01,000 --> \na"), "line 1: bad timestamp ''"),
        (cue_file("00:00:01.5 --> 00:00:02.000\na"), "line 1: bad timestamp '00:00:01.5'"),
        (cue_file("00:61:01.000 --> 00:62:02.000\na"), "line 1: bad timestamp '00:61:01.000'"),
        (cue_file("00:01.000 --> 00:02.000\na", header="WEBVTTX\n\n"), "line 1: the header"),
    ],
)
def test_bad_cue_is_rejected_naming_its_line(data: bytes, message: str) -> None:
    assert caption_error(data).startswith(message)


def test_cue_ending_over_a_second_after_the_video_is_rejected() -> None:
    data = cue_file("00:00:01,000 --> 00:00:02,000\na", "00:00:09,000 --> 00:00:11,001\nb")
    assert caption_error(data, max_seconds=10).startswith("line 4: the cue ends at 11.001s")


@pytest.mark.parametrize("max_seconds", [10, 10.0, 9.5, None])
def test_cue_ending_within_a_second_of_the_video_end_is_accepted(max_seconds: float | None) -> None:
    data = cue_file("00:00:09,000 --> 00:00:10,500\nb")
    assert parse_captions(data, max_seconds) == [Cue(start=9.0, end=10.5, text="b")]


def test_cues_starting_together_are_in_order() -> None:
    data = cue_file("00:00:01,000 --> 00:00:03,000\na", "00:00:01,000 --> 00:00:02,000\nb")
    assert [cue.text for cue in parse_captions(data, None)] == ["a", "b"]


def test_error_carries_its_line_number_as_details() -> None:
    with pytest.raises(CaptionError) as raised:
        parse_captions(cue_file("00:00:02,000 --> 00:00:01,000\na", header="\n\n"), None)
    assert raised.value.details == {"line": 3}


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (0, "00:00:00.000"),
        (3723.4567, "01:02:03.457"),
        (59.9996, "00:01:00.000"),
        (360000, "100:00:00.000"),
    ],
)
def test_webvtt_timestamps_are_hours_minutes_seconds_and_milliseconds(
    seconds: float, written: str
) -> None:
    assert timestamp(seconds) == written
