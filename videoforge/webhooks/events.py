"""The events webhooks report, and their bodies: `{"type", "timestamp", "data"}`.

`data` is the job or video as the API shows it, built from the row the change left (the outbox
keeps it), so a late or retried delivery still says what happened then, not what is true now.
Signed URLs are left out: they would expire before a retry.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from datetime import datetime
from typing import Any, TypeVar

from videoforge.db.jobs import Job
from videoforge.db.videos import Video
from videoforge.gallery.present import SIGNED_URL_FIELDS, iso, video_json
from videoforge.jobs.present import job_json

JOB_EVENTS = ("job.started", "job.completed", "job.failed", "job.cancelled")
VIDEO_EVENTS = ("video.uploaded", "video.playable", "video.ready", "video.deleted")
# What an endpoint may subscribe to (all of them by default); webhook.test goes to one endpoint
# when its owner asks for it.
EVENT_TYPES = (*VIDEO_EVENTS, *JOB_EVENTS)
TEST_EVENT = "webhook.test"

Row = TypeVar("Row")


def event_body(event_type: str, occurred_at: datetime, subject: dict[str, Any]) -> bytes:
    """The JSON body one delivery of this event posts (the same bytes on every retry)."""
    body = {
        "type": event_type,
        "timestamp": iso(occurred_at),
        "data": event_data(event_type, subject),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def event_data(event_type: str, subject: dict[str, Any]) -> dict[str, Any]:
    if event_type in JOB_EVENTS:
        return job_json(from_row(Job, subject))
    if event_type in VIDEO_EVENTS:
        shown = video_json(from_row(Video, subject), thumbnail_url=None)
        return {k: v for k, v in shown.items() if k not in SIGNED_URL_FIELDS}
    return subject


def from_row(kind: type[Row], row: dict[str, Any]) -> Row:
    """A row dataclass from the JSON PostgreSQL made of that row (`to_jsonb`): timestamps come
    back from their ISO text, whole numbers in float columns as floats, other columns dropped."""
    values = {}
    for name, types in _field_types(typing.cast(Any, kind)).items():
        value = row.get(name)
        if isinstance(value, str) and datetime in types:
            value = datetime.fromisoformat(value)
        elif isinstance(value, int) and float in types:
            value = float(value)
        values[name] = value
    return kind(**values)


@functools.cache
def _field_types(kind: Any) -> dict[str, tuple[Any, ...]]:
    """Each field's type, its union's members spelled out (`float | None`: float, NoneType)."""
    names = {f.name for f in dataclasses.fields(kind)}
    hints = typing.get_type_hints(kind)
    return {name: (*typing.get_args(hints[name]), hints[name]) for name in names}
