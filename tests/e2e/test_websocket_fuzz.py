"""1,000 random and oversized client frames on the WebSocket API, while another client keeps pinging.

Every fuzz frame must get exactly one JSON error frame from the $default route, or be refused by
the gateway the way API Gateway documents it (quotas page: a frame over 32 KB or a message over
128 KB closes the connection with 1009; binary-media page: a binary frame closes it with 1003).
The local gateway forwards binary frames and frames of 32..128 KB to the function (which answers
an error frame: its limit is 8 KiB) and closes on messages over 128 KB, so both outcomes are
accepted for those classes and only the documented one for the rest. Meanwhile a second client's
pings are all answered, and afterwards both the second client and a new connection still work.

The frames are drawn from a seeded RNG (reproducible), none of them is a valid ping, and they
are sent in bursts (a burst waits for its error frames); a frame the gateway may refuse is sent
alone, and a refused connection is replaced by a new one.
"""

from __future__ import annotations

import contextlib
import json
import random
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from local.launcher import LocalStackProcess
from taskflow.domain.client_frames import MAX_CLIENT_FRAME_BYTES, request_of

pytestmark = pytest.mark.e2e

FRAMES: Final = 1_000
SEED: Final = 20261126
BURST: Final = 50
REPLY_TIMEOUT: Final = 20.0
KB: Final = 1024
API_GATEWAY_FRAME_LIMIT: Final = 32 * KB
API_GATEWAY_MESSAGE_LIMIT: Final = 128 * KB

ERROR_FRAME: Final = "error frame"
CLOSED_TOO_BIG: Final = "closed 1009"  # RFC 6455 1009 message too big
CLOSED_UNSUPPORTED: Final = "closed 1003"  # RFC 6455 1003 unsupported data


@dataclass(frozen=True)
class FrameClass:
    name: str
    make: Callable[[random.Random], str | bytes]
    weight: int
    outcomes: frozenset[str]  # what may happen to one such frame


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(
        ["str", "int", "float", "bool", "null", "list", "dict"] if depth < 6 else ["str", "int"]
    )
    if kind == "str":
        return "".join(
            rng.choice(string.printable + "\u00e9\u20ac\U0001f600") for _ in range(rng.randint(0, 20))
        )
    if kind == "int":
        return rng.choice([0, -1, 2**64, rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -1e300, 3.14])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["action", "Action", "type", "data", "ping", ""]
    return {
        rng.choice(keys): rng.choice(["ping ", "PING", "pong", "subscribe", None, 1, ["ping"]])
        if rng.random() < 0.5
        else _random_json(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


def _json_text(rng: random.Random) -> str:
    return json.dumps(_random_json(rng), ensure_ascii=rng.random() < 0.5)


def _garbage_text(rng: random.Random) -> str:
    alphabet = string.printable + '{}[]":,\u00e9\u20ac\U0001f600\u0000'
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))


def _text_of(low: int, high: int) -> Callable[[random.Random], str]:
    def make(rng: random.Random) -> str:
        size = rng.randint(low, high)
        prefix = '{"action": "ping", "pad": "' if rng.random() < 0.5 else ""
        return prefix + "".join(rng.choice(string.ascii_letters) for _ in range(size - len(prefix)))

    return make


def _binary(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.4:
        return rng.randbytes(rng.randint(1, 200))  # almost always invalid UTF-8
    if choice < 0.6:
        return b"\xff" + _json_text(rng).encode()  # JSON behind an invalid UTF-8 byte
    if choice < 0.8:
        return _json_text(rng).encode("utf-8")  # valid UTF-8 JSON, but binary
    return rng.randbytes(rng.randint(MAX_CLIENT_FRAME_BYTES + 1, 20 * KB))


FRAME_CLASSES: Final = (
    FrameClass("random JSON text", _json_text, 400, frozenset({ERROR_FRAME})),
    FrameClass("garbage text", _garbage_text, 250, frozenset({ERROR_FRAME})),
    FrameClass(
        "text over the 8 KiB function limit",
        _text_of(MAX_CLIENT_FRAME_BYTES + 1, API_GATEWAY_FRAME_LIMIT),
        100,
        frozenset({ERROR_FRAME}),
    ),
    FrameClass("binary", _binary, 150, frozenset({ERROR_FRAME, CLOSED_UNSUPPORTED})),
    FrameClass(
        "text over API Gateway's 32 KB frame limit",
        _text_of(API_GATEWAY_FRAME_LIMIT + 1, API_GATEWAY_MESSAGE_LIMIT),
        80,
        frozenset({ERROR_FRAME, CLOSED_TOO_BIG}),
    ),
    FrameClass(
        "text over API Gateway's 128 KB message limit",
        _text_of(API_GATEWAY_MESSAGE_LIMIT + 1, 160 * KB),
        20,
        frozenset({CLOSED_TOO_BIG}),
    ),
)


def fuzz_frames(count: int, seed: int) -> list[tuple[FrameClass, str | bytes]]:
    """`count` frames (classes in proportion to their weights), none of them a supported request
    (a ping or a resume): each must be answered with an error frame."""
    rng = random.Random(seed)
    total = sum(c.weight for c in FRAME_CLASSES)
    frames: list[tuple[FrameClass, str | bytes]] = []
    for frame_class in FRAME_CLASSES:
        for _ in range(round(count * frame_class.weight / total)):
            while True:
                frame = frame_class.make(rng)
                raw = frame.encode("utf-8") if isinstance(frame, str) else frame
                if request_of(raw).get("type") == "error":
                    frames.append((frame_class, frame))
                    break
    rng.shuffle(frames)
    return frames


def _open(url: str) -> contextlib.AbstractContextManager[ClientConnection]:
    # No permessage-deflate: the sizes on the wire are the frame sizes.
    return connect(url, open_timeout=30, compression=None, max_size=None)


def _replies(connection: ClientConnection, timeout: float) -> Iterator[dict[str, Any]]:
    """Frames the server sends, minus task status pushes (other tests' tasks may still run)."""
    deadline = time.monotonic() + timeout
    while True:
        message = connection.recv(timeout=max(0.0, deadline - time.monotonic()))
        frame = json.loads(message)
        if isinstance(frame, dict) and frame.get("type") == "task":
            continue
        yield frame


@dataclass
class Pinger:
    """The other client: ping, wait for pong, repeat, until stopped."""

    url: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def ping(self, connection: ClientConnection) -> None:
        started = time.monotonic()
        connection.send(json.dumps({"action": "ping"}))
        reply = next(_replies(connection, REPLY_TIMEOUT))
        if reply != {"type": "pong"}:
            self.failures.append(f"ping answered {reply!r}")
        self.latencies.append(time.monotonic() - started)

    def run(self, connection: ClientConnection) -> None:
        try:
            while not self.stop.is_set():
                self.ping(connection)
                time.sleep(0.02)
        except Exception as error:  # a closed connection or a missing pong fails the test below
            self.failures.append(repr(error))


@dataclass
class Fuzzer:
    url: str
    connections: contextlib.ExitStack  # every connection it opens is closed with it
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    connection: ClientConnection | None = None
    reconnects: int = 0

    def current(self) -> ClientConnection:
        if self.connection is None:
            self.connection = self.connections.enter_context(_open(self.url))
        return self.connection

    def send_burst(self, burst: list[tuple[FrameClass, str | bytes]]) -> None:
        """Frames the gateway always forwards: exactly one error frame each."""
        connection = self.current()
        for _, frame in burst:
            connection.send(frame)
        replies = _replies(connection, REPLY_TIMEOUT)
        for frame_class, _ in burst:
            self._record(frame_class, ERROR_FRAME, next(replies))

    def send_alone(self, frame_class: FrameClass, frame: str | bytes) -> None:
        """A frame the gateway may refuse: an error frame, or the connection closed with a code."""
        connection = self.current()
        try:
            connection.send(frame)
            reply = next(_replies(connection, REPLY_TIMEOUT))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            self.outcomes[(frame_class.name, f"closed {code}")] += 1
            if f"closed {code}" not in frame_class.outcomes:
                self.unexpected.append(f"{frame_class.name}: connection closed with {code}")
            self.connection = None
            self.reconnects += 1
            return
        self._record(frame_class, ERROR_FRAME, reply)

    def _record(self, frame_class: FrameClass, outcome: str, reply: dict[str, Any]) -> None:
        self.outcomes[(frame_class.name, outcome)] += 1
        if outcome not in frame_class.outcomes:
            self.unexpected.append(f"{frame_class.name}: {outcome}")
        if set(reply) != {"type", "message"} or reply["type"] != "error" or not reply["message"]:
            self.unexpected.append(f"{frame_class.name}: answered {reply!r}")

    def no_more_replies(self) -> bool:
        if self.connection is None:
            return True
        try:
            extra = next(_replies(self.connection, 1.0))
        except TimeoutError:
            return True
        self.unexpected.append(f"an extra frame: {extra!r}")
        return False


def test_fuzz_frames_are_reproducible_and_none_is_a_ping() -> None:
    first, second = fuzz_frames(FRAMES, SEED), fuzz_frames(FRAMES, SEED)

    assert len(first) == FRAMES
    assert [frame for _, frame in first] == [frame for _, frame in second]
    assert Counter(c.name for c, _ in first) == {c.name: c.weight for c in FRAME_CLASSES}
    assert any(isinstance(f, bytes) and not _is_utf8(f) for _, f in first)
    assert max(len(f) for _, f in first) > API_GATEWAY_MESSAGE_LIMIT


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_a_thousand_random_or_oversized_frames_get_error_frames_and_other_clients_are_served(
    dev_stack: LocalStackProcess,
) -> None:
    frames = fuzz_frames(FRAMES, SEED)
    pinger = Pinger(dev_stack.ws_url)
    started = time.monotonic()

    with contextlib.ExitStack() as connections, _open(dev_stack.ws_url) as other:
        fuzzer = Fuzzer(dev_stack.ws_url, connections)
        pinger.ping(other)  # the other client is served before...
        thread = threading.Thread(target=pinger.run, args=(other,), daemon=True)
        thread.start()
        burst: list[tuple[FrameClass, str | bytes]] = []
        for frame_class, frame in frames:
            if frame_class.outcomes == {ERROR_FRAME}:
                burst.append((frame_class, frame))
                if len(burst) == BURST:
                    fuzzer.send_burst(burst)
                    burst = []
            else:
                fuzzer.send_alone(frame_class, frame)
        fuzzer.send_burst(burst)
        assert fuzzer.no_more_replies()  # exactly one reply per frame
        pinger.stop.set()
        thread.join(REPLY_TIMEOUT + 5)
        pinger.ping(other)  # ...during, and after the fuzzing

        with _open(dev_stack.ws_url) as fresh:  # and a new client is served too
            pinger.ping(fresh)
        pinger.ping(fuzzer.current())  # so is the fuzzing client itself

    elapsed = time.monotonic() - started
    print(
        f"\n{FRAMES} fuzz frames in {elapsed:.1f} s, {fuzzer.reconnects} refused connections; "
        f"outcomes: {dict(sorted(fuzzer.outcomes.items()))}; other client: {len(pinger.latencies)} pongs, "
        f"slowest {max(pinger.latencies):.2f} s"
    )
    assert fuzzer.unexpected == []
    assert sum(fuzzer.outcomes.values()) == FRAMES
    assert pinger.failures == []
    assert len(pinger.latencies) >= 10  # it kept pinging all along
    assert fuzzer.outcomes[("text over API Gateway's 128 KB message limit", CLOSED_TOO_BIG)] == 20
