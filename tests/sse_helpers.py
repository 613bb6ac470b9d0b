"""Reading event streams over real HTTP (httpx against uvicorn)."""
import asyncio
import contextlib
import time
from typing import AsyncIterator, List, Optional

import httpx

SSE = {"accept": "text/event-stream"}
TOKEN = "x-graphql-event-stream-token"
TIMEOUT = 20.0  # a bound on waits for what must happen; never reached when it does


class EventStream:
    """An open event stream: its response and its messages, each the raw text of one
    message (what comes before a blank line), comments included."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.aiter_raw()
        self._buffer = b""
        self.raw = b""  # every byte received
        self.ids: List[str] = []  # the id of each event events() returned

    async def next(self) -> str:
        """The next message; raises EOFError when the server ends the stream."""
        while b"\n\n" not in self._buffer:
            try:
                chunk = await asyncio.wait_for(self._chunks.__anext__(), TIMEOUT)
            except StopAsyncIteration:
                raise EOFError(self._buffer.decode()) from None
            self._buffer += chunk
            self.raw += chunk
        message, self._buffer = self._buffer.split(b"\n\n", 1)
        return message.decode()

    async def take(self, n: int) -> List[str]:
        return [await self.next() for _ in range(n)]

    async def events(self, n: int) -> List[str]:
        """The next n messages that are not comments, without their ``id:`` line (kept in
        ``ids``, "" for an event without one)."""
        out: List[str] = []
        while len(out) < n:
            message = await self.next()
            if not message.startswith(":"):
                out.append(self._without_id(message))
        return out

    def _without_id(self, message: str) -> str:
        """message without its ``id:`` line, which goes to ``ids``."""
        event_id = ""
        if message.startswith("id: "):
            line, message = message.split("\n", 1)
            event_id = line[len("id: "):]
        self.ids.append(event_id)
        return message

    async def ended(self) -> List[str]:
        """Every message until the server ends the stream, events without their ``id:`` line
        (kept in ``ids``)."""
        out = []
        while True:
            try:
                message = await self.next()
                out.append(message if message.startswith(":") else self._without_id(message))
            except EOFError as end:
                assert str(end) == "", f"the stream ended inside a message: {end}"
                return out


@contextlib.asynccontextmanager
async def stream(client: httpx.AsyncClient, method: str, url: str, **kw) -> AsyncIterator[EventStream]:
    kw["headers"] = {**SSE, **(kw.get("headers") or {})}
    async with client.stream(method, url, **kw) as response:
        events = EventStream(response)
        try:
            yield events
        finally:  # closed here, not by the collector (which would warn it was never awaited)
            await events._chunks.aclose()  # type: ignore[attr-defined]


def wait_until(predicate, what: str, timeout: float = TIMEOUT) -> None:
    """Poll a counter until predicate() holds (the server updates it asynchronously)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def active(executor) -> int:
    return executor.get_metrics()["active"]


def next_event(data: str, event_id: Optional[str] = None) -> str:
    return (f"id: {event_id}\n" if event_id else "") + f"event: next\ndata: {data}"
