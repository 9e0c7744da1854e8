"""A real webhook receiver: an aiohttp server on a free port that verifies every delivery with
the Standard Webhooks reference implementation (`standardwebhooks`) and answers as told."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support import free_port


@dataclass
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    answered: int
    verified: dict[str, Any] | None = None  # the payload, when a secret verified it

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


@dataclass
class Receiver:
    """Answers with `answers` in turn (then `default`), and keeps what it received."""

    port: int
    secrets: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    default: int = 204
    delay: float = 0.0  # seconds before answering
    body: bytes = b""
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.answers.pop(0) if self.answers else self.default
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(Received(headers, body, status, self._verify(body, headers)))
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=status, body=self.body)

    def _verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        """The payload, if any of the secrets verifies the signature (the library's own check,
        timestamp tolerance included)."""
        for secret in self.secrets:
            try:
                payload: dict[str, Any] = Webhook(secret).verify(body, headers)
                return payload
            except WebhookVerificationError:
                continue
        return None

    async def wait_for(
        self, check: Callable[[Sequence[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        """Wait until `check(received)` holds; what was received by then."""
        async with asyncio.timeout(timeout):
            while not check(self.received):
                self.arrived.clear()
                await self.arrived.wait()
        return list(self.received)

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.payload["type"] == event_type]


StartReceiver = Callable[..., Any]


@pytest.fixture(name="start_receiver")
async def start_receiver_fixture() -> AsyncIterator[Callable[..., Any]]:
    """`await start_receiver(**fields)`: a receiver listening on 127.0.0.1, stopped afterwards."""
    runners: list[web.AppRunner] = []

    async def start(port: int | None = None, **fields: Any) -> Receiver:
        receiver = Receiver(port or free_port(), **fields)
        app = web.Application()
        app.router.add_post("/hooks", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
        runners.append(runner)
        return receiver

    yield start
    for runner in runners:
        await runner.cleanup()
