"""Backends that hold connections or clients: opened once, closed once, usable with `async with`."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class Resource(abc.ABC):  # noqa: B024 (abstract by intent; its methods are optional hooks)
    async def open(self) -> None:  # noqa: B027 (a no-op by default, not abstract)
        """Acquire what the backend needs (clients, connections, secrets); called once."""

    async def close(self) -> None:  # noqa: B027 (a no-op by default, not abstract)
        """Release what `open` acquired."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
