"""Request schemas (marshmallow): what each route accepts, and the words for what it refuses."""

from __future__ import annotations

import re
from typing import Any

import marshmallow
from marshmallow import fields, validate

from videoforge.auth import is_safe_user_id
from videoforge.db.jobs import STATUSES
from videoforge.transcode.ladder import QUALITY_NAMES

VISIBILITY = validate.OneOf(
    ("public", "unlisted", "private"), error="Must be one of: public, unlisted, private."
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f]")


class Text(fields.String):
    """A string with surrounding whitespace removed and no control characters."""

    def __init__(self, *, multiline: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.forbidden = _CONTROL if multiline else _CONTROL_OR_NEWLINE

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if self.forbidden.search(text):
            raise marshmallow.ValidationError("Must not contain control characters.")
        return text


def _title(**kwargs: Any) -> Text:
    return Text(validate=validate.Length(min=1, max=200), **kwargs)


def _description(**kwargs: Any) -> Text:
    return Text(multiline=True, validate=validate.Length(max=5000), **kwargs)


class GenerateUploadUrlSchema(marshmallow.Schema):
    # Any name is fine: the key gets a sanitised copy of it (gallery.naming.safe_filename).
    filename = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, error="Filename is required"),
            validate.Length(max=255, error="Filename is too long (at most 255 characters)"),
        ],
        error_messages={"required": "Filename is required", "null": "Filename is required"},
    )
    content_type = fields.String(
        data_key="contentType",
        required=True,
        validate=validate.Regexp(
            r"^video/[a-z0-9][a-z0-9.+-]{0,126}$",
            flags=re.IGNORECASE,
            error="Only video uploads are allowed",
        ),
        error_messages={"required": "Content type is required"},
    )
    file_size = fields.Integer(
        data_key="fileSize", strict=True, validate=validate.Range(min=1), allow_none=True
    )


QUALITY = validate.OneOf(QUALITY_NAMES, error=f"Must be one of: {', '.join(QUALITY_NAMES)}.")
JOB_STATUS = validate.OneOf(STATUSES, error="Not a job status.")


def _qualities(**kwargs: Any) -> fields.List[Any]:
    """A non-empty list of distinct rendition names."""
    return fields.List(
        fields.String(validate=QUALITY),
        validate=[validate.Length(min=1, max=3, error="Give one to three renditions."), _distinct],
        **kwargs,
    )


def _distinct(items: list[str]) -> None:
    if len(set(items)) != len(items):
        raise marshmallow.ValidationError("Renditions must be distinct.")


def _storage_key(name: str) -> fields.String:
    """A required storage key sent as `name` (validate_key checks its shape later)."""
    return fields.String(
        data_key=name,
        required=True,
        validate=validate.Length(min=1, max=1024),
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


class AsciiInteger(fields.Integer):
    """An integer written in plain ASCII digits, as a link spells it: no sign, no spaces, no
    underscores, no other scripts' digits (all of which `int()` would take)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
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
    search = Text(load_default=None, validate=validate.Length(max=200))
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
