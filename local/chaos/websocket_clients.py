"""The WebSocket side of the simulated frontend: K clients that keep every frame they receive
(recorder.py). `stay` of them connect before the first submission, to stay the whole run; the
others churn: connect, read for a while, drop the TCP connection without a close frame,
reconnect. A client that reconnects resumes from the cursor of the last frame it saw, as a
browser does (README, "Resume after a reconnect"), unless the run is the --no-resume mutant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from local.chaos.history import ClientHistory
from local.chaos.recorder import Recorder
from local.chaos.stack import ChaosStack


@dataclass
class WsClient:
    history: ClientHistory
    url: str  # with the user's ?token= on a stage with authorizers
    rng: random.Random
    recorder: Recorder
    stack: ChaosStack  # `killing`: a lost connection is the runner's kill, not a drop
    stopping: asyncio.Event  # the end of the run
    resume: bool  # False: the --no-resume mutant
    connected: asyncio.Event = field(default_factory=asyncio.Event)  # a churning client's: at once

    async def _connect(self, final: bool = False) -> ClientConnection | None:
        deadline = time.time() + 30
        while (final and time.time() < deadline) or (not final and not self.stopping.is_set()):
            try:
                connection = await connect(
                    self.url,
                    open_timeout=15,
                    ping_interval=None,
                    close_timeout=2,
                    max_queue=None,
                    compression=None,
                    proxy=None,
                )
            except (OSError, TimeoutError, WebSocketException):
                self.history.rejected_connects += 1
                await asyncio.sleep(0.2 + self.rng.random() * 0.3)
                continue
            self.history.connects += 1
            if self.history.connected_at is None:
                self.history.connected_at = time.time()
            return connection
        return None

    async def _read(self, connection: ClientConnection) -> None:
        with contextlib.suppress(WebSocketException, OSError):
            async for message in connection:
                self.recorder.on_message(self.history, message)

    @staticmethod
    async def _close(connection: ClientConnection, reader: asyncio.Future[None]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 5)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    async def stay(self) -> None:
        connection = await self._connect()
        self.connected.set()
        while connection is not None:
            reader = asyncio.ensure_future(self._read(connection))
            stopping = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if self.stopping.is_set():
                await self._close(connection, reader)
                return
            if self.stack.killing:
                self.history.killed += 1  # the runner killed the stack: expected, then reconnect
            else:
                self.history.dropped += 1  # the server ended it: this client no longer "stayed"
            connection = await self._connect()
            if connection is not None:
                await self._resume(connection)

    async def churn(self) -> None:
        self.connected.set()
        while not self.stopping.is_set():
            connection = await self._connect()
            if connection is None:
                return
            reader = asyncio.ensure_future(self._read(connection))
            await self._resume(connection)
            # A browser that just came back stays for its replay; the drop comes later, at random.
            await self._answered(reader, timeout=30)
            await asyncio.wait({reader}, timeout=self.rng.uniform(2.0, 8.0))
            if not reader.done():
                connection.transport.abort()  # no close frame: an abrupt disconnect
                self.history.aborts += 1
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.rng.uniform(0.1, 1.5))
        await self._catch_up()

    async def _resume(self, connection: ClientConnection) -> None:
        """Ask for what this client missed while it was away (the protocol a reconnecting browser
        follows; README). Without a cursor yet there is nothing to resume from."""
        if self.resume and self.history.cursor is not None:
            self.history.resume_pending = True
            self.history.resume_sent_at = time.time()
            with contextlib.suppress(WebSocketException, OSError):
                await connection.send(json.dumps({"action": "resume", "since": self.history.cursor}))

    async def _answered(self, reader: asyncio.Future[None], timeout: float) -> None:
        """Wait until the pending resume is answered (or the connection ends, or `timeout`)."""
        deadline = time.time() + timeout
        while self.history.resume_pending and not reader.done() and time.time() < deadline:
            await asyncio.sleep(0.05)

    async def _catch_up(self) -> None:
        """At the end of the run: reconnect once more, resume, and wait for the answer, so that the
        last gap is covered like every other (the check needs a client that came back)."""
        if not self.resume or self.history.cursor is None:
            return
        connection = await self._connect(final=True)
        if connection is None:
            return
        reader = asyncio.ensure_future(self._read(connection))
        for _ in range(3):  # an error answer (the store throttled, say) is asked again
            answers = self.history.resumes + self.history.resyncs
            await self._resume(connection)
            await self._answered(reader, timeout=30)
            if self.history.resumes + self.history.resyncs > answers:
                break
        await self._close(connection, reader)
