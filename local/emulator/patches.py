"""Patches applied inside the moto server process (never in the handlers' processes).

What they replace, why, and the measurements: docs/local-stack.md, "Why moto is patched". The
replacements keep moto's SQS semantics (visibility, receive counts, DLQ redrive at
maxReceiveCount, FIFO groups, deleting with an older receipt handle) and make each call
O(messages inspected). Each queue's receive/delete/change-visibility holds the queue's lock (two
concurrent receives could deliver one message twice) and every DynamoDB and Streams request one
lock, so conditional writes are atomic and stream sequence numbers unique, as on AWS. The streams
backend keeps the last 10,000 iterators (a forgotten one is an ExpiredIteratorException, as on
AWS after 15 min).

Every change to a queue's messages is told, under the queue's lock, to the observer that
`observe_messages` installs (local/state/moto_state.py journals them for the durable state).
"""

from __future__ import annotations

import calendar
import copy
import datetime
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import moto
from moto import backends
from moto.core.exceptions import JsonRESTError
from moto.core.utils import camelcase_to_underscores, unix_time, unix_time_millis
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import StreamRecord
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.sqs import models
from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid

PATCHED_MOTO_VERSION = "5.2.5"
MAX_SHARD_ITERATORS = 10_000

# Set when the stack stops (`close_receives`): from then on ReceiveMessage hands out nothing, and a
# long poll under way returns empty within a second, so no message is received by a poller that
# has already gone (it would come back only after its visibility timeout, a receive spent).
RECEIVES_CLOSED = threading.Event()


def close_receives() -> None:
    RECEIVES_CLOSED.set()


# Every DynamoDB and DynamoDB Streams request holds it once the patches are installed
# (local/metering/meter.py holds it around a write to read the items before and after).
DYNAMODB_LOCK = threading.RLock()


class LazyQueueAttributes(Mapping[str, Any]):
    """The mapping moto's ``Queue.attributes`` builds, computed one key at a time."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        value = getattr(queue, camelcase_to_underscores(name))
        if name == "Policy" and queue.policy:
            value = queue.policy
        if name == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        if isinstance(value, bool):
            value = str(value).lower()
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _NotTracked(list[Any]):
    """moto's model-instance registry, for models it must not grow with."""

    def append(self, item: Any) -> None:
        pass


def json_default(value: Any) -> Any:
    """Timestamps as moto's JSON serializer writes them: epoch seconds, milliseconds kept."""
    if isinstance(value, datetime.datetime):
        seconds = calendar.timegm(value.utctimetuple())
        return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class MessageObserver:
    """Told of every change to a queue's messages, under the queue's lock; by default ignores them."""

    def changed(self, queue: Any, message: Any) -> None:
        pass

    def removed(self, queue: Any, message: Any) -> None:
        pass


_observer = MessageObserver()


def observe_messages(observer: MessageObserver) -> None:
    """From now on `observer` hears of every message added, received, moved, re-timed or deleted."""
    global _observer  # noqa: PLW0603 - one observer for the whole moto process
    _observer = observer


def index_receipt_handles(queue: Any) -> None:
    """Rebuild the receipt-handle index of a queue whose messages were replaced (a restore)."""
    index = _handle_index(queue)
    index.clear()
    for message in queue._messages:
        for handle in message.all_receipt_handles:
            index[handle] = message


def _handle_index(queue: Any) -> dict[str, Any]:
    index: dict[str, Any] | None = queue.__dict__.get("_local_handle_index")
    if index is None:
        index = {}
        queue.__dict__["_local_handle_index"] = index
    return index


def install() -> None:
    """Apply every patch. Idempotent."""
    if getattr(moto, "_local_stack_patched", False):
        return
    if moto.__version__ != PATCHED_MOTO_VERSION:
        raise RuntimeError(
            f"local/emulator/patches.py was written against moto {PATCHED_MOTO_VERSION}, found "
            f"{moto.__version__}: re-check moto/sqs/models.py before changing the pin"
        )
    _patch_sqs()
    _patch_dynamodb()
    _patch_streams()
    _patch_dispatcher()
    for model in (models.Message, ShardIterator, StreamRecord, Item):
        model.instances_tracked = _NotTracked()  # type: ignore[union-attr]
    moto._local_stack_patched = True  # type: ignore[attr-defined]


def _patch_sqs() -> None:  # noqa: PLR0915 - one self-contained replacement of moto's receive
    queue_class = models.Queue
    backend_class = models.SQSBackend
    original_queue_delete = queue_class.delete_message
    original_add_message = queue_class.add_message
    original_change_visibility = backend_class.change_message_visibility
    original_get_queue_attributes = backend_class.get_queue_attributes
    original_purge = backend_class.purge_queue

    def attributes(self: Any) -> Mapping[str, Any]:
        return LazyQueueAttributes(self)

    queue_class.attributes = property(attributes)  # type: ignore[assignment]

    # The ApproximateNumberOf* counts: same predicates as Message.visible / .delayed, one clock
    # reading per scan instead of two datetime computations per message.
    def count(test: Callable[[Any, float], bool]) -> property:
        def counted(queue: Any) -> int:
            now = unix_time_millis()
            return sum(1 for message in queue._messages if test(message, now))

        return property(counted)

    for name, test in (
        ("approximate_number_of_messages", lambda m, now: now > m.visible_at and not now < m.delayed_until),
        ("approximate_number_of_messages_not_visible", lambda m, now: not now > m.visible_at),
        ("approximate_number_of_messages_delayed", lambda m, now: now < m.delayed_until),
    ):
        setattr(queue_class, name, count(test))

    def get_queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        result = original_get_queue_attributes(self, queue_name, attribute_names)
        return dict(result)  # "All" returns queue.attributes itself: hand out a real dict

    backend_class.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]

    def add_message(self: Any, message: Any) -> None:
        with self._messages_lock:
            original_add_message(self, message)
            if self._messages and self._messages[-1] is message:  # not dropped as a FIFO duplicate
                _observer.changed(self, message)

    queue_class.add_message = add_message  # type: ignore[method-assign]

    def receive_message(  # noqa: PLR0912, PLR0915, PLR0917 - moto's signature; mirrors its loop branch by branch
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        if message_attribute_names is None:
            message_attribute_names = []
        queue = self.get_queue(queue_name)
        index = _handle_index(queue)
        result: list[Any] = []
        polling_end = unix_time() + wait_seconds_timeout
        retention_ms = int(queue.message_retention_period) * 1000
        redrive = queue.redrive_policy if queue.dead_letter_queue is not None else None
        max_receives = int(redrive["maxReceiveCount"]) if redrive else None

        with queue._messages_lock:
            while not RECEIVES_CLOSED.is_set():
                now = unix_time_millis()
                pending_groups = queue.pending_message_groups if queue.fifo_queue else set()
                to_dlq: list[Any] = []
                expired: list[Any] = []
                next_change = float("inf")
                for message in queue._messages:
                    if message.visible_at >= now or message.delayed_until > now:
                        # not visible (in flight) or delayed: when does that change?
                        next_change = min(next_change, max(message.visible_at, message.delayed_until))
                        continue
                    if message in queue.pending_messages:
                        # visible again while pending: the consumer timed out
                        queue.pending_messages.discard(message)
                        if queue.fifo_queue:
                            pending_groups = queue.pending_message_groups
                    if message.group_id and queue.fifo_queue and message.group_id in pending_groups:
                        continue
                    if max_receives is not None and message.approximate_receive_count >= max_receives:
                        to_dlq.append(message)
                        continue
                    if message.sent_timestamp + retention_ms <= now:
                        expired.append(message)
                        continue
                    queue.pending_messages.add(message)
                    message.mark_received(visibility_timeout=visibility_timeout)
                    index[message.receipt_handle] = message
                    _observer.changed(queue, message)
                    delivered = copy.copy(message)  # moto deep-copied; attributes are replaced below
                    models._filter_message_attributes(delivered, message_attribute_names)
                    result.append(delivered)
                    if len(result) >= count:
                        break

                for message in to_dlq + expired:
                    queue._messages.remove(message)
                    queue.pending_messages.discard(message)
                    for handle in message.all_receipt_handles:
                        index.pop(handle, None)
                for message in expired:
                    _observer.removed(queue, message)
                for message in to_dlq:
                    queue.dead_letter_queue.add_message(message)  # the observer hears of it there

                if result or wait_seconds_timeout == 0:
                    break
                remaining = polling_end - unix_time()
                if remaining <= 0:
                    break
                until_change = (next_change - unix_time_millis()) / 1000 + 0.001
                queue._messages_lock.wait(timeout=max(0.001, min(remaining, until_change, 1.0)))
        return result

    backend_class.receive_message = receive_message  # type: ignore[method-assign]

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            if receipt_handle in self.deleted_messages:
                return
            index = _handle_index(self)
            message = index.get(receipt_handle)
            if message is None:
                original_queue_delete(self, receipt_handle)  # raises ReceiptHandleIsInvalid
                return
            try:
                self._messages.remove(message)
            except ValueError:
                raise ReceiptHandleIsInvalid() from None
            self.pending_messages.discard(message)
            handles = message.all_receipt_handles
            self.deleted_messages.update(handles)
            for handle in handles:
                index.pop(handle, None)
            _observer.removed(self, message)

    queue_class.delete_message = delete_message  # type: ignore[method-assign]

    def change_message_visibility(
        self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            message = _handle_index(queue).get(receipt_handle)
            if message is None:
                original_change_visibility(self, queue_name, receipt_handle, visibility_timeout)
                return
            visibility_timeout_msec = int(visibility_timeout) * 1000
            given_visibility_timeout = unix_time_millis() + visibility_timeout_msec
            if given_visibility_timeout - message.sent_timestamp > 43200 * 1000:
                raise InvalidParameterValue(
                    f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                    "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
                )
            message.change_visibility(visibility_timeout)
            if message.visible and message in queue.pending_messages:
                queue.pending_messages.remove(message)
            _observer.changed(queue, message)
            # a message made visible now wakes long-polling receivers at once
            queue._messages_lock.notify_all()

    backend_class.change_message_visibility = change_message_visibility  # type: ignore[method-assign]

    def purge_queue(self: Any, queue_name: str) -> None:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            purged = list(queue._messages)
            original_purge(self, queue_name)
            _handle_index(queue).clear()
            for message in purged:
                _observer.removed(queue, message)

    backend_class.purge_queue = purge_queue  # type: ignore[method-assign]


def _patch_dynamodb() -> None:
    for handler_class in (DynamoHandler, DynamoDBStreamsHandler):
        original = handler_class.call_action

        def call_action(self: Any, _original: Any = original) -> Any:
            with DYNAMODB_LOCK:
                return _original(self)

        handler_class.call_action = call_action  # type: ignore[method-assign]


def _patch_dispatcher() -> None:
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules

    original = DomainDispatcherApplication.get_backend_for_host
    cache: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in cache:
            cache[host] = original(self, host)
        return cache[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def _patch_streams() -> None:
    def get_records(self: Any) -> tuple[str, dict[str, str]]:
        iterator = self._get_param("ShardIterator")
        limit = self._get_param("Limit")
        result = self.backend.get_records(iterator, 1000 if limit is None else limit)
        body = json.dumps(result, default=json_default)
        return body, {"Content-Type": "application/x-amz-json-1.0"}

    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign,assignment]

    original_get_records = DynamoDBStreamsBackend.get_records

    def bounded_get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        if iterator_arn not in self.shard_iterators:  # forgotten, or from before a restart
            raise JsonRESTError("ExpiredIteratorException", "Iterator expired: get a new one")
        result: dict[str, Any] = original_get_records(self, iterator_arn, limit)
        iterators = self.shard_iterators
        while len(iterators) > MAX_SHARD_ITERATORS:
            del iterators[next(iter(iterators))]
        return result

    DynamoDBStreamsBackend.get_records = bounded_get_records  # type: ignore[method-assign]
