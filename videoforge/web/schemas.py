"""Request schemas (marshmallow): what each route accepts, and the words for what it refuses."""

from __future__ import annotations

import re
from typing import Any

import marshmallow
from marshmallow import fields, validate

from videoforge.auth.tokens import is_safe_user_id
from videoforge.gallery.captions import MAX_LANGUAGE_TAG_LENGTH, is_language_tag
from videoforge.model import STATUSES, VISIBILITIES
from videoforge.storage.base import MAX_PUT_BYTES
from videoforge.storage.multipart import MAX_PARTS
from videoforge.support.digits import parse_digits
from videoforge.transcode.ladder import QUALITY_NAMES
from videoforge.webhooks.addresses import MAX_URL_LENGTH
from videoforge.webhooks.events import EVENT_TYPES

VISIBILITY = validate.OneOf(VISIBILITIES, error=f"Must be one of: {', '.join(VISIBILITIES)}.")
# Control characters (Unicode category Cc: C0, DEL and C1), as regex character-class ranges
# that Python and the ECMA regexes of JSON Schema read alike; multi-line text keeps tab, LF, CR.
_CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"
_CONTROL_CHARS_BUT_LINES = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# What `str.strip()` removes besides control characters, spelled out: ECMA regexes differ on `\s`.
_SPACES = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


class Text(fields.String):
    """A string without control characters, surrounding whitespace removed.

    `max_length` counts the text as sent; `blank=False` asks for something besides whitespace;
    `refused` names more characters it may not hold (plain characters, no regex syntax). The
    same rules go into the OpenAPI document as `pattern` and `maxLength`, so a client generated
    from it is never surprised.
    """

    def __init__(
        self,
        *,
        max_length: int,
        multiline: bool = False,
        blank: bool = True,
        refused: str = "",
        **kwargs: Any,
    ) -> None:
        controls = _CONTROL_CHARS_BUT_LINES if multiline else _CONTROL_CHARS
        text = f"[^{controls}{refused}]*"
        visible = f"[^{controls}{refused}{_SPACES}]"
        pattern = f"^{text}$" if blank else f"^{text}{visible}{text}$"
        metadata = {"pattern": pattern, "maxLength": max_length, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.max_length = max_length
        self.blank = blank
        self.forbidden = re.compile(f"[{controls}]")
        self.refused = re.compile(f"[{re.escape(refused)}]") if refused else None
        self.refused_error = f"Must not contain {_listed(refused)}."

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        if len(raw) > self.max_length:
            raise marshmallow.ValidationError(f"Longer than {self.max_length} characters.")
        if self.forbidden.search(raw):
            raise marshmallow.ValidationError("Must not contain control characters.")
        if self.refused is not None and self.refused.search(raw):
            raise marshmallow.ValidationError(self.refused_error)
        text = raw.strip()
        if not text and not self.blank:
            raise marshmallow.ValidationError("Must not be blank.")
        return text


def _listed(chars: str) -> str:
    """`<>&` as "<, > or &"."""
    return ", ".join(chars[:-1]) + f" or {chars[-1]}" if len(chars) > 1 else chars


def _title(**kwargs: Any) -> Text:
    return Text(max_length=200, blank=False, **kwargs)


def _description(**kwargs: Any) -> Text:
    return Text(max_length=5000, multiline=True, **kwargs)


class FullMatch(validate.Regexp):
    """`Regexp` on the whole value: `$` alone lets a trailing newline through."""

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise marshmallow.ValidationError(self._format_error(value))
        return value


def _filename() -> fields.String:
    # Any name is fine: the key gets a sanitised copy of it (gallery.naming.safe_filename).
    return fields.String(
        required=True,
        validate=[
            validate.Length(min=1, error="Filename is required"),
            validate.Length(max=255, error="Filename is too long (at most 255 characters)"),
        ],
        error_messages={"required": "Filename is required", "null": "Filename is required"},
    )


def _video_type(name: str) -> fields.String:
    return fields.String(
        data_key=name,
        required=True,
        # Spelled out rather than IGNORECASE: the document's (ECMA) pattern has no flags.
        validate=FullMatch(
            r"^[Vv][Ii][Dd][Ee][Oo]/[A-Za-z0-9][A-Za-z0-9.+-]{0,126}$",
            error="Only video uploads are allowed",
        ),
        error_messages={"required": "Content type is required"},
    )


def _file_size(name: str, **cap: int) -> fields.Integer:
    # Over `storage.max_upload_bytes` (or a lower `maximum`) is a 413 (the gallery checks it):
    # the document says so.
    return fields.Integer(
        data_key=name,
        strict=True,
        validate=validate.Range(min=1),
        allow_none=True,
        metadata={"x_maximum_from": "storage.max_upload_bytes", **cap},
    )


class GenerateUploadUrlSchema(marshmallow.Schema):
    filename = _filename()
    content_type = _video_type("contentType")
    file_size = _file_size("fileSize", maximum=MAX_PUT_BYTES)


class StartMultipartSchema(marshmallow.Schema):
    """What `@uppy/aws-s3` sends to start a multipart upload; its size may come in `metadata`."""

    filename = _filename()
    content_type = _video_type("type")
    metadata = fields.Dict(keys=fields.String(), load_default=dict)
    size = _file_size("size")

    @marshmallow.post_load
    def _size_from_metadata(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.get("size") is None:
            data["size"] = _declared_size(data["metadata"].get("size"))
        return data


def _declared_size(value: Any) -> int | None:
    """A size in Uppy's metadata: an integer, or digits (its meta values are often text)."""
    if isinstance(value, str):
        value = parse_digits(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


QUALITY = validate.OneOf(QUALITY_NAMES, error=f"Must be one of: {', '.join(QUALITY_NAMES)}.")
JOB_STATUS = validate.OneOf(STATUSES, error="Not a job status.")


def _qualities(**kwargs: Any) -> fields.List[Any]:
    """A non-empty list of distinct rendition names."""
    return fields.List(
        fields.String(validate=QUALITY),
        validate=[validate.Length(min=1, max=3, error="Give one to three renditions."), _distinct],
        metadata={"uniqueItems": True},
        **kwargs,
    )


def _distinct(items: list[str]) -> None:
    if len(set(items)) != len(items):
        raise marshmallow.ValidationError("Renditions must be distinct.")


# `validate_key`'s rules as a pattern, for the document: segments of anything but '/', '\'
# and control characters, none of them empty, '.' or '..'. 256 characters (of at most 4 bytes
# each) always fit its 1024 bytes, and every key the server makes is shorter.
_KEY_CHAR = rf"[^/\\{_CONTROL_CHARS}]"
_KEY_SEGMENT = rf"(?:{_KEY_CHAR}*[^./\\{_CONTROL_CHARS}]{_KEY_CHAR}*|\.\.\.+)"
STORAGE_KEY_PATTERN = rf"^{_KEY_SEGMENT}(?:/{_KEY_SEGMENT})*$"
STORAGE_KEY_MAX_LENGTH = 256
STORAGE_KEY_SCHEMA = {
    "type": "string",
    "maxLength": STORAGE_KEY_MAX_LENGTH,
    "pattern": STORAGE_KEY_PATTERN,
}


def _storage_key(name: str) -> fields.String:
    """A required storage key sent as `name`, of the shape `validate_key` accepts."""
    return fields.String(
        data_key=name,
        required=True,
        validate=[
            validate.Length(min=1, max=STORAGE_KEY_MAX_LENGTH),
            FullMatch(STORAGE_KEY_PATTERN, error="Invalid storage key."),
        ],
        error_messages={"required": f"{name} is required"},
    )


class ConfirmUploadSchema(marshmallow.Schema):
    s3_key = _storage_key("s3Key")
    title = _title(required=True, error_messages={"required": "Title is required"})
    description = _description(load_default="")
    visibility = fields.String(load_default="public", validate=VISIBILITY)
    transcode = _qualities(load_default=None, allow_none=True)


class UpdateVideoSchema(marshmallow.Schema):
    title = _title()
    description = _description()
    visibility = fields.String(validate=VISIBILITY)

    @marshmallow.validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise marshmallow.ValidationError("No fields to update")


def _language_tag(value: str) -> None:
    if not is_language_tag(value):
        raise marshmallow.ValidationError("Must be a BCP 47 language tag, such as en or pt-BR.")


LABEL_REFUSED = '<>&"'
# The shape of a BCP 47 tag, as the document can say it; the handler checks the subtags' order.
LANGUAGE_TAG_PATTERN = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"


class PutCaptionSchema(marshmallow.Schema):
    """A caption track: `content` is the text of an SRT or WebVTT file (a BOM is fine), at most
    1 MiB as UTF-8; SRT is stored converted to WebVTT."""

    language = fields.String(
        required=True,
        validate=[validate.Length(min=2, max=MAX_LANGUAGE_TAG_LENGTH), _language_tag],
        metadata={"pattern": LANGUAGE_TAG_PATTERN},
    )
    # A label is text wherever it goes, yet Safari's native HLS names its text tracks from the
    # master playlist's NAME (a quoted string: no `"`) and Plyr writes a track's label into its
    # menus as HTML: markup characters are refused at the source rather than escaped in each.
    label = Text(max_length=100, blank=False, refused=LABEL_REFUSED, load_default=None)
    content = fields.String(required=True)


class AsciiInteger(fields.Integer):
    """An integer written in plain ASCII digits, as a link spells it: no plus sign, no spaces,
    no underscores, no other scripts' digits (all of which `int()` would take). A minus sign
    reads as the number it is, so that `-1` is told it is out of range, not that it is no
    integer (every field of this kind has a minimum)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        digits = value.removeprefix("-") if isinstance(value, str) else ""
        if not (digits.isascii() and digits.isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class PageQuerySchema(marshmallow.Schema):
    """`page` and `limit` of a listing (the handler caps `limit`)."""

    class Meta:
        # Query strings carry whatever links and browsers add; only these are ours.
        unknown = marshmallow.EXCLUDE

    page = AsciiInteger(load_default=1, validate=validate.Range(min=1))
    limit = AsciiInteger(load_default=10, validate=validate.Range(min=1))


class ListVideosQuerySchema(PageQuerySchema):
    search = Text(max_length=200, load_default=None)
    visibility = fields.String(load_default=None, validate=VISIBILITY)
    mine = fields.Boolean(load_default=False)


class StreamQuerySchema(marshmallow.Schema):
    class Meta:
        unknown = marshmallow.EXCLUDE

    quality = fields.String(load_default=None, validate=QUALITY)


class CreateJobSchema(marshmallow.Schema):
    input_source = _storage_key("inputSource")
    output_formats = _qualities(data_key="outputFormats", load_default=list(QUALITY_NAMES))


class ListJobsQuerySchema(PageQuerySchema):
    status = fields.String(load_default=None, validate=JOB_STATUS)


def _safe_user_id(value: str) -> None:
    if not is_safe_user_id(value):
        raise marshmallow.ValidationError("Not a valid user id.")


class AdminJobsQuerySchema(ListJobsQuerySchema):
    """Every user's jobs: `page`, `limit`, `status`, and `userId` to pick one user."""

    user_id = fields.String(data_key="userId", load_default=None, validate=_safe_user_id)


class CleanupJobsQuerySchema(marshmallow.Schema):
    """How many days a finished job is kept (at most a century)."""

    class Meta:
        unknown = marshmallow.EXCLUDE

    days = AsciiInteger(load_default=30, validate=validate.Range(min=1, max=36500))


class SweepQuerySchema(marshmallow.Schema):
    """`dryRun`: only `true` (the default) or `false`; deleting must be asked for in words."""

    class Meta:
        unknown = marshmallow.EXCLUDE

    dry_run = fields.Boolean(
        data_key="dryRun",
        load_default=True,
        truthy={"true"},
        falsy={"false"},
        error_messages={"invalid": "Must be true or false."},
    )


class UploadParamsQuerySchema(marshmallow.Schema):
    """What `@uppy/aws-s3` asks a single upload's URL with: its metadata come as
    `metadata[name]` fields, of which only the size counts here."""

    class Meta:
        unknown = marshmallow.EXCLUDE

    filename = _filename()
    content_type = _video_type("type")
    size = AsciiInteger(
        data_key="metadata[size]",
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"x_maximum_from": "storage.max_upload_bytes", "maximum": MAX_PUT_BYTES},
    )


class UploadKeyQuerySchema(marshmallow.Schema):
    """The `key` every request about a multipart upload names, beside its upload id."""

    class Meta:
        unknown = marshmallow.EXCLUDE

    key = _storage_key("key")


PART_NUMBER = validate.Range(min=1, max=MAX_PARTS, error=f"Part numbers are 1 to {MAX_PARTS}")


# Each is a signature made on the event loop: clients ask for a few ahead (Uppy, our CLI: 16).
MAX_SIGNED_AT_ONCE = 100
# The document's bound on `partNumbers`: 100 distinct numbers take at least 291 characters
# (9 of one digit, 90 of two, one of three, 99 commas), so a shorter text never names more.
PART_NUMBERS_MAX_LENGTH = 290
# 1 to 10000, as the document's (ECMA) pattern spells it.
PART_NUMBER_PATTERN = "(?:[1-9][0-9]{0,3}|10000)"


class PartNumbers(fields.Field):  # type: ignore[type-arg]
    """Part numbers, comma separated (`1,2,3`); each is signed once however often named."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[int]:
        if not isinstance(value, str):
            raise marshmallow.ValidationError("Not a valid string.")
        items = value.split(",")
        numbers = [n for n in map(parse_digits, items) if n is not None and 1 <= n <= MAX_PARTS]
        if len(numbers) != len(items):
            raise marshmallow.ValidationError(f"Part numbers are 1 to {MAX_PARTS}, comma separated")
        distinct = list(dict.fromkeys(numbers))
        if len(distinct) > MAX_SIGNED_AT_ONCE:
            raise marshmallow.ValidationError(f"At most {MAX_SIGNED_AT_ONCE} parts at once")
        return distinct


class SignPartsQuerySchema(UploadKeyQuerySchema):
    part_numbers = PartNumbers(
        data_key="partNumbers",
        required=True,
        error_messages={"required": "partNumbers is required"},
        metadata={
            "type": "string",
            "pattern": f"^{PART_NUMBER_PATTERN}(,{PART_NUMBER_PATTERN})*$",
            "maxLength": PART_NUMBERS_MAX_LENGTH,
        },
    )


class CompletedPartSchema(marshmallow.Schema):
    class Meta:
        unknown = marshmallow.EXCLUDE

    number = fields.Integer(data_key="PartNumber", required=True, strict=True, validate=PART_NUMBER)
    etag = fields.String(data_key="ETag", required=True, validate=validate.Length(min=1, max=1024))


class CompleteMultipartSchema(marshmallow.Schema):
    parts = fields.List(
        fields.Nested(CompletedPartSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_PARTS, error=f"1 to {MAX_PARTS} parts"),
        error_messages={"required": "parts is required"},
    )


# --- webhooks -----------------------------------------------------------------------------------

EVENT_TYPE = validate.OneOf(
    EVENT_TYPES, error="events: unknown event type {input!r} (expected one of: {choices})"
)


class StrictBoolean(fields.Boolean):
    """`true` or `false` as JSON writes them, not `1` or `"yes"` (which `Boolean` would take):
    the document says boolean, and a client sending anything else has a bug to hear about."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _webhook_url(**kwargs: Any) -> Text:
    # Only the text is checked here: the scheme and every address the host resolves to are the
    # service's to judge (the deployment's rules, and DNS, which no schema can state).
    about = (
        "Where events are posted: an https URL (http too where webhooks.allow_http is on) whose"
        " host resolves to public addresses only."
    )
    return Text(max_length=MAX_URL_LENGTH, blank=False, metadata={"description": about}, **kwargs)


def _event_types(**kwargs: Any) -> fields.List[Any]:
    """Event types to subscribe to; a name given twice counts once."""
    return fields.List(
        fields.String(validate=EVENT_TYPE),
        validate=validate.Length(min=1, error="events: give at least one event type"),
        **kwargs,
    )


def _webhook_description(**kwargs: Any) -> Text:
    return Text(max_length=500, multiline=True, **kwargs)


class CreateWebhookSchema(marshmallow.Schema):
    """An endpoint to post events to: every event type unless `events` names some."""

    url = _webhook_url(required=True, error_messages={"required": "url is required"})
    events = _event_types(load_default=None)
    description = _webhook_description(load_default="")


class UpdateWebhookSchema(marshmallow.Schema):
    url = _webhook_url()
    events = _event_types()
    description = _webhook_description()
    enabled = StrictBoolean()

    @marshmallow.validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise marshmallow.ValidationError("No fields to update")
