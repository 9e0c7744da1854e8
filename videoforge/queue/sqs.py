"""SQS backend (AWS, or anything that speaks its API) via aiobotocore.

SQS may accept a stale receipt handle (moto's DeleteMessage certainly does): a worker whose
visibility lapsed can delete a message that was since delivered to someone else. Correctness
therefore rests on the job row's lease, which the worker fences in the database, not on receipts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from videoforge.config import QueueConfig
from videoforge.errors import ServiceUnavailable
from videoforge.queue.base import (
    JobQueue,
    Message,
    QueueStats,
    check_receive_args,
    check_release_delay,
    check_send_args,
    check_visibility,
    decode_body,
    encode_body,
)

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 20  # SQS's limit for one long poll; longer waits loop
# What SQS says when a receipt no longer names an in-flight message: stale, so a no-op (as on
# the postgres backend).
# AWS answers InvalidParameterValue for an expired receipt; our own arguments are checked first.
STALE_RECEIPT_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
        "InvalidParameterValue",
    }
)


class SqsQueue(JobQueue):
    """One aiobotocore client per queue object; queue and dead-letter queue by name or URL."""

    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self._stack = contextlib.AsyncExitStack()
        self._client_or_none: Any = None
        self._url = ""
        self._dlq_url = ""

    @property
    def _client(self) -> Any:
        if self._client_or_none is None:
            raise ServiceUnavailable("SQS queue used before open()")
        return self._client_or_none

    async def open(self) -> None:
        try:
            self._client_or_none = await self._stack.enter_async_context(self._connect())
            if self.config.sqs_create_queues:
                await self._create_queues()
            else:
                self._url = await self._resolve(self.config.sqs_queue)
                self._dlq_url = await self._resolve(self.config.sqs_dead_letter_queue)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> Any:
        client_config = AioConfig(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=MAX_WAIT_SECONDS + 20,  # a long poll holds the response that long
        )
        return get_session().create_client(
            "sqs",
            endpoint_url=self.config.sqs_endpoint_url or None,
            region_name=self.config.sqs_region,
            config=client_config,
        )

    async def close(self) -> None:
        self._client_or_none = None
        await self._stack.aclose()

    async def _resolve(self, name_or_url: str) -> str:
        with _errors(f"SQS queue {name_or_url!r} is not usable"):
            return await resolve_queue_url(self._client, name_or_url)

    async def _create_queues(self) -> None:
        """Create both queues if missing; (re)apply visibility and redrive from the config."""
        self._dlq_url = await self._create(self.config.sqs_dead_letter_queue)
        self._url = await self._create(self.config.sqs_queue)
        with _errors(f"cannot configure SQS queue {self.config.sqs_queue!r}"):
            attributes = await self._client.get_queue_attributes(
                QueueUrl=self._dlq_url, AttributeNames=["QueueArn"]
            )
            redrive = {
                "deadLetterTargetArn": attributes["Attributes"]["QueueArn"],
                "maxReceiveCount": str(self.config.max_attempts),
            }
            await self._client.set_queue_attributes(
                QueueUrl=self._url,
                Attributes={
                    "VisibilityTimeout": str(self.config.visibility_timeout),
                    "RedrivePolicy": json.dumps(redrive),
                },
            )

    async def _create(self, name_or_url: str) -> str:
        if name_or_url.startswith(("http://", "https://")):
            return await self._resolve(name_or_url)
        with _errors(f"cannot create SQS queue {name_or_url!r}"):
            # Without attributes CreateQueue is idempotent: an existing queue's URL comes back.
            response = await self._client.create_queue(QueueName=name_or_url)
        return str(response["QueueUrl"])

    async def send(self, job_id: int, delay_seconds: int = 0, *, chunk: int | None = None) -> None:
        check_send_args(job_id, delay_seconds, chunk)
        body = encode_body(job_id, chunk)
        with _errors(f"cannot send to SQS queue {self.config.sqs_queue!r}"):
            await self._client.send_message(
                QueueUrl=self._url, MessageBody=body, DelaySeconds=delay_seconds
            )

    async def receive(self, max_messages: int = 1, wait_seconds: float = 0.0) -> list[Message]:
        check_receive_args(max_messages, wait_seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            wait = min(MAX_WAIT_SECONDS, math.ceil(max(0.0, deadline - loop.time())))
            received = await self._receive_batch(max_messages, wait)
            messages = [m for m in [await self._accept(r) for r in received] if m is not None]
            if messages or loop.time() >= deadline:
                return messages

    async def _receive_batch(self, max_messages: int, wait: int) -> list[dict[str, Any]]:
        with _errors(f"cannot receive from SQS queue {self.config.sqs_queue!r}"):
            response = await self._client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait,
                # Per receive, so the config holds even on a queue someone else created.
                VisibilityTimeout=self.config.visibility_timeout,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    async def _accept(self, raw: dict[str, Any]) -> Message | None:
        """A deliverable message, or None for one dead-lettered now (malformed or exhausted)."""
        body = str(raw.get("Body", ""))
        count = int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        task = decode_body(body)
        if task is None:
            log.warning("queue: SQS message %s has a malformed body", raw.get("MessageId"))
        elif count > self.config.max_attempts:
            # A queue without our RedrivePolicy (created by someone else) still redrives.
            log.warning("queue: %s received %d times", body, count)
        else:
            return Message(task[0], str(raw["ReceiptHandle"]), count, task[1])
        try:
            await self._move_to_dlq(body, str(raw["ReceiptHandle"]))
        except ServiceUnavailable as exc:
            # It comes back after its visibility timeout and is tried again; others go on.
            log.warning("queue: %s", exc.message)
        return None

    async def extend(self, message: Message, seconds: int) -> None:
        check_visibility(seconds)
        await self._change_visibility(message, seconds)

    async def ack(self, message: Message) -> None:
        what = f"cannot delete from SQS queue {self.config.sqs_queue!r}"
        with _errors(what, ignore=STALE_RECEIPT_CODES):
            await self._client.delete_message(QueueUrl=self._url, ReceiptHandle=message.receipt)

    async def release(self, message: Message, delay_seconds: float = 0) -> None:
        # SQS cannot un-count a receive, so a fresh message for the job replaces this delivery.
        # Send first: a crash in between leaves a duplicate (the job row fences it), never a
        # lost job.
        check_release_delay(delay_seconds)
        with _errors(f"cannot hand back to SQS queue {self.config.sqs_queue!r}"):
            await self._client.send_message(
                QueueUrl=self._url,
                MessageBody=message.body,
                DelaySeconds=math.ceil(delay_seconds),  # whole seconds only: never early
            )
        await self.ack(message)

    async def dead_letter(self, message: Message) -> None:
        await self._move_to_dlq(message.body, message.receipt)

    async def _change_visibility(self, message: Message, seconds: int) -> None:
        what = f"cannot change visibility in SQS queue {self.config.sqs_queue!r}"
        with _errors(what, ignore=STALE_RECEIPT_CODES):
            await self._client.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=message.receipt, VisibilityTimeout=seconds
            )

    async def _move_to_dlq(self, body: str, receipt: str) -> None:
        # Send first: a crash in between leaves a duplicate, never a lost message.
        with _errors(f"cannot dead-letter to SQS queue {self.config.sqs_dead_letter_queue!r}"):
            await self._client.send_message(QueueUrl=self._dlq_url, MessageBody=body)
            await self._client.delete_message(QueueUrl=self._url, ReceiptHandle=receipt)
        log.warning("queue: message %r dead-lettered", body[:100])

    async def stats(self) -> QueueStats:
        """Approximate counts from queue attributes.

        `oldest_age_seconds` is always 0: SQS publishes that age only to CloudWatch
        (ApproximateAgeOfOldestMessage), and peeking at messages would change their visibility.
        """
        main = await self._attributes(self._url, self.config.sqs_queue)
        dead = await self._attributes(self._dlq_url, self.config.sqs_dead_letter_queue)
        return QueueStats(
            visible=main["ApproximateNumberOfMessages"],
            in_flight=main["ApproximateNumberOfMessagesNotVisible"],
            oldest_age_seconds=0.0,
            dead_lettered=sum(dead.values()),
        )

    async def _attributes(self, url: str, name: str) -> dict[str, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        with _errors(f"SQS queue {name!r} is not usable"):
            response = await self._client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        return {key: int(response["Attributes"].get(key, 0)) for key in names}

    async def check(self) -> None:
        for url, name in (
            (self._url, self.config.sqs_queue),
            (self._dlq_url, self.config.sqs_dead_letter_queue),
        ):
            with _errors(f"SQS queue {name!r} is not usable"):
                await self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])


async def resolve_queue_url(sqs: Any, name_or_url: str) -> str:
    """A queue URL from either its URL (checked) or its name (looked up)."""
    if name_or_url.startswith(("http://", "https://")):
        await sqs.get_queue_attributes(QueueUrl=name_or_url, AttributeNames=["QueueArn"])
        return name_or_url
    response = await sqs.get_queue_url(QueueName=name_or_url)
    return str(response["QueueUrl"])


@contextlib.contextmanager
def _errors(what: str, ignore: frozenset[str] = frozenset()) -> Iterator[None]:
    """AWS failures as `ServiceUnavailable` in words; error codes in `ignore` are no-ops."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in ignore:
            raise ServiceUnavailable(f"{what}: {exc}") from exc
        log.info("queue: %s ignored (%s)", code, what)
    except BotoCoreError as exc:
        raise ServiceUnavailable(f"{what}: {exc}") from exc
