"""Fault hooks inside one function worker (see local/faults/injection.py for the whole picture).

Loaded by local/runtime/bootstrap.py from its file path (never as `local.faults.worker_hooks`: the
handler must not see local/ on sys.path), so it imports only the standard library and, once
installed, botocore. The configuration is the JSON of FaultOptions.worker_config().

The botocore hooks are registered on every Session the worker creates (the handlers' lazy clients
included): `before-send` fails each HTTP attempt (so botocore's retries absorb most) for the SQS
outage and 3/4 of the API errors; `after-call`, once per call, raises the other 1/4 after a
write succeeded and records the effect and the kill after a commit write; `before-parameter-build`
of UpdateItem tags the commit (the first UpdateItem on the task after the step, same thread) and
applies the mutant. The processing step is wrapped: each run is a "step" line.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
SQS_SENDS = frozenset({"SendMessage", "SendMessageBatch"})
SQS_WRITES = SQS_SENDS | {"DeleteMessage", "DeleteMessageBatch"}
SQS_WRITES |= {"ChangeMessageVisibility", "ChangeMessageVisibilityBatch"}
AFTER_WRITE_SHARE = 0.25  # of the injected API errors: raised after the write was applied
_COMMIT_KEY = "local_chaos_commit"
_MUTANT_KEY_NAME = "#localChaosKey"


class _AppendLog:
    """One JSON line per record, appended with a single write (atomic between processes)."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())


def _single_key(key: Any) -> tuple[str, str] | None:
    """(attribute name, string value) of a one-attribute DynamoDB key."""
    if isinstance(key, dict) and len(key) == 1:
        ((name, value),) = key.items()
        if isinstance(value, dict) and isinstance(value.get("S"), str):
            return str(name), str(value["S"])
    return None


def _keys_task(key_value: str, task_id: str) -> bool:
    """Whether a table key addresses `task_id`: the key is the task id, or ends with `#<taskId>`
    (`<owner>#<taskId>` on auth: jwt stages; taskflow.table_schema)."""
    return key_value == task_id or key_value.endswith(f"#{task_id}")


class WorkerFaults:
    def __init__(self, config: dict[str, Any]) -> None:
        self.function = str(config.get("function", ""))
        self.kill_rate = float(config.get("killRate") or 0.0)
        self.aws_error_rate = float(config.get("awsErrorRate") or 0.0)
        share = config.get("afterWriteShare")
        self.after_write_share = AFTER_WRITE_SHARE if share is None else float(share)
        self.mutant = config.get("mutant") or None
        self.step = str(config.get("step") or "")
        self._control_file = str(config.get("controlFile") or "")
        self._effects = _AppendLog(str(config["effectsLog"]))
        self._faults = _AppendLog(str(config["faultsLog"]))
        seed = config.get("seed")
        self._rng = random.Random(None if seed is None else f"{seed}-{self.function}-{os.getpid()}")
        self._rng_lock = threading.Lock()
        self._state = threading.local()
        self._step_installed = False
        self._control_version: tuple[int, int, int] | None = None
        self._windows: dict[str, Any] = {}

    # --- decisions and records --------------------------------------------------------------

    def _roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < probability

    def _effect(self, event: str, task_id: str, owner: Any, run: Any, attempt: int, **details: Any) -> None:
        """A line of effects.log: a run of the processing step ("step") or a success it committed."""
        record = {"event": event, "taskId": task_id, "owner": owner, "run": run, "attempt": attempt}
        self._effects.write({**record, **details, "pid": os.getpid(), "at": time.time()})

    def fired(self, fault: str, **details: Any) -> None:
        self._faults.write({"fault": fault, "function": self.function, "at": time.time(), **details})

    def _control(self) -> dict[str, Any]:
        """The control file's windows, re-read only when the file changes (one stat() a call)."""
        try:
            stat = os.stat(self._control_file)
        except OSError:
            self._control_version, self._windows = None, {}
            return self._windows
        version = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        if version != self._control_version:
            self._control_version = version
            try:
                with open(self._control_file, encoding="utf-8") as file:
                    document = json.load(file)
                self._windows = document if isinstance(document, dict) else {}
            except (OSError, ValueError):
                self._windows = {}
        return self._windows

    def window_open(self, name: str) -> bool:
        """Whether the control file's window `name` (`sqsOutage`, `processingOutage`) is open now."""
        window = self._control().get(name)
        try:
            return float(window["from"]) <= time.time() < float(window["until"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            return False

    # --- installation -----------------------------------------------------------------------

    def register(self, events: Any) -> None:
        """Register the hooks on a botocore Session or a client's `meta.events`."""
        handlers = {
            "before-send.dynamodb": self.before_send,
            "before-send.sqs": self.before_send,
            "after-call.dynamodb": self.after_call,
            "after-call.sqs": self.after_call,
            "before-parameter-build.dynamodb.UpdateItem": self.before_update_item,
        }
        for event, handler in handlers.items():
            events.register(event, handler, unique_id=f"local-faults-{event}")

    def install_botocore(self) -> None:
        """Register the hooks on every botocore Session the worker creates from now on."""
        import botocore.session  # noqa: PLC0415 - only in workers with faults

        original_init = botocore.session.Session.__init__
        faults = self

        def init(session: Any, *args: Any, **kwargs: Any) -> None:
            original_init(session, *args, **kwargs)
            faults.register(session)

        botocore.session.Session.__init__ = init

    def wrap_step(self) -> bool:
        """Wrap the processing step if the handler imported its module. True if wrapped."""
        module_name, _, function_name = self.step.partition(":")
        module = sys.modules.get(module_name)
        original = getattr(module, function_name, None) if module is not None else None
        if module is None or not callable(original):
            return False
        faults = self

        def instrumented_step(task: Any, attempt: int, *args: Any, **kwargs: Any) -> Any:
            task_id = str(getattr(task, "task_id", ""))
            owner = getattr(task, "owner", None)  # the same taskId may be several owners' tasks
            run = getattr(task, "run", None)
            faults._state.step = None
            try:
                if faults.window_open("processingOutage"):
                    faults.fired("processing-outage", taskId=task_id, attempt=attempt)
                    raise RuntimeError("injected failure: processing outage (local fault)")
                result = original(task, attempt, *args, **kwargs)
            except BaseException as error:
                faults._effect("step", task_id, owner, run, attempt, ok=False, error=str(error)[:200])
                faults._state.step = (task_id, run, attempt, False, owner)
                raise
            faults._effect("step", task_id, owner, run, attempt, ok=True)
            faults._state.step = (task_id, run, attempt, True, owner)
            return result

        setattr(module, function_name, instrumented_step)
        self._step_installed = True
        return True

    # --- botocore handlers ------------------------------------------------------------------

    def before_update_item(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self._step_installed:
            return
        key = _single_key(params.get("Key"))
        step = getattr(self._state, "step", None)
        if step is not None and key is not None and _keys_task(key[1], step[0]):
            context[_COMMIT_KEY] = step
            self._state.step = None
        if self.mutant == "unconditional-writes" and key is not None and params.get("ConditionExpression"):
            names = dict(params.get("ExpressionAttributeNames") or {})
            names[_MUTANT_KEY_NAME] = key[0]
            params["ExpressionAttributeNames"] = names
            params["ConditionExpression"] = (
                f"attribute_exists({_MUTANT_KEY_NAME}) OR ({params['ConditionExpression']})"
            )
            self.fired("mutant", kind=self.mutant, taskId=key[1])

    def before_send(self, request: Any, event_name: str, **_: Any) -> Any:
        service = event_name.split(".")[1]
        operation = event_name.rsplit(".", 1)[-1]
        if service == "sqs" and operation in SQS_SENDS and self.window_open("sqsOutage"):
            from botocore.exceptions import EndpointConnectionError  # noqa: PLC0415

            self.fired("sqs-outage", operation=operation)
            raise EndpointConnectionError(endpoint_url=str(getattr(request, "url", "")))
        if not self._roll(self.aws_error_rate * (1 - self.after_write_share)):
            return None
        kinds = ["InternalServerError", "ThrottlingException"]
        if service == "dynamodb":
            kinds.append("ProvisionedThroughputExceededException")
        with self._rng_lock:
            code = self._rng.choice(kinds)
        self.fired("aws-error", kind=code, service=service, operation=operation)
        return self._error_response(request, service, code)

    def _error_response(self, request: Any, service: str, code: str) -> Any:
        from botocore.awsrequest import AWSResponse  # noqa: PLC0415

        status = 500 if code == "InternalServerError" else 400
        namespace = "com.amazonaws.dynamodb.v20120810" if service == "dynamodb" else "com.amazonaws.sqs"
        body = json.dumps({"__type": f"{namespace}#{code}", "message": "injected by the local stack"})
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "local-fault"}
        if service == "sqs":
            headers["x-amzn-query-error"] = f"{code};{'Receiver' if status == 500 else 'Sender'}"
        raw = SimpleNamespace(stream=lambda **_: iter([body.encode()]))  # what AWSResponse reads a body from
        return AWSResponse(str(getattr(request, "url", "")), status, headers, raw)

    def after_call(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], event_name: str, **_: Any
    ) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        status = int(getattr(http_response, "status_code", 0) or 0)
        succeeded = 200 <= status < 300
        commit = context.pop(_COMMIT_KEY, None)
        if commit is not None and succeeded:
            task_id, run, attempt, step_ok, owner = commit
            if step_ok:
                self._effect("effect", task_id, owner, run, attempt)
            if self._roll(self.kill_rate):
                self.fired("worker-kill", taskId=task_id, attempt=attempt, afterSuccess=step_ok)
                sys.stdout.flush()
                os._exit(137)
        service = event_name.split(".")[1]
        writes = DYNAMODB_WRITES if service == "dynamodb" else SQS_WRITES
        if succeeded and operation in writes and self._roll(self.aws_error_rate * self.after_write_share):
            self.fired(
                "aws-error", kind="InternalServerError-after-write", service=service, operation=operation
            )
            http_response.status_code = 500
            parsed["Error"] = {
                "Code": "InternalServerError",
                "Message": "injected by the local stack after the write was applied",
            }
            parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = 500


def load(config_json: str) -> WorkerFaults:
    return WorkerFaults(json.loads(config_json))
