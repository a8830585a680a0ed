"""The runtime inside one function worker process (the local stand-in for Lambda's runtime).

Started by local/runtime/pool.py as `python -P local/runtime/bootstrap.py --response-fd N ...`
in the function's asset folder, with the function's environment. It imports the handler once (the
cold start), then serves one JSON request a line on stdin with one JSON response a line on the
response pipe; stdout and stderr are the function's log. Standard library only, so the handler's
imports are its own.

`--time-scale S` scales the SQS times the function sets (VisibilityTimeout, DelaySeconds) with a
botocore hook, as the stack scales the queues' own. `--faults JSON` loads
local/faults/worker_hooks.py by path before the handler is imported.
"""

from __future__ import annotations

import argparse
import ctypes
import decimal
import importlib
import importlib.util
import json
import math
import os
import signal
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes and method of the context object Lambda passes to Python handlers."""

    def __init__(self, request_id: str, deadline_ms: float, function_arn: str) -> None:
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Lambda refuses a synchronous function's result over 6 MB, serialized as Python 3.12+ runtimes do.
RESULT_LIMIT_BYTES = 6 * 1024 * 1024


def _serialized(payload: Any) -> tuple[str | None, dict[str, Any] | None]:
    """The handler's result as JSON, serialized once, the way Lambda's Python 3.12+ runtimes do (its
    size is what their limit counts), or the error Lambda reports instead of it."""
    try:
        text = json.dumps(payload, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        return None, _error(error, "Runtime.MarshalError")
    size = len(text.encode("utf-8"))
    if size > RESULT_LIMIT_BYTES:
        message = (
            f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
            f"({RESULT_LIMIT_BYTES} bytes)."
        )
        return None, {"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge", "stackTrace": []}
    return text, None


def _usage(began_cpu: float) -> dict[str, float]:
    """The invocation's CPU time (the whole worker process: its threads too) and the worker's
    peak resident memory so far, what Lambda reports as Max Memory Used (bench memory)."""
    import resource  # noqa: PLC0415 - Unix only, like the local stack

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "cpuMs": round((time.process_time() - began_cpu) * 1000, 3),
        "maxMemoryMb": round(peak_kb / 1024, 1),
    }


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this worker when the local stack dies (same as local/runtime/processes.py)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def scaled_seconds(value: Any, scale: float) -> Any:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return value
    if seconds <= 0:
        return seconds
    return max(1, math.ceil(seconds * scale))


def install_time_scale(scale: float) -> None:
    import botocore.session  # noqa: PLC0415 - only when scaling; the bootstrap itself is stdlib-only

    def single(params: dict[str, Any], **_: Any) -> None:
        for key in ("VisibilityTimeout", "DelaySeconds"):
            if key in params:
                params[key] = scaled_seconds(params[key], scale)

    def batch(params: dict[str, Any], **_: Any) -> None:
        for entry in params.get("Entries", []) or []:
            single(entry)

    events = {
        "before-parameter-build.sqs.ChangeMessageVisibility": single,
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch": batch,
        "before-parameter-build.sqs.ReceiveMessage": single,
        "before-parameter-build.sqs.SendMessage": single,
        "before-parameter-build.sqs.SendMessageBatch": batch,
    }
    original_init = botocore.session.Session.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        for event, handler in events.items():
            self.register(event, handler, unique_id=f"local-time-scale-{event}")

    botocore.session.Session.__init__ = init


def _load_fault_hooks(config_json: str) -> Any:
    """local/faults/worker_hooks.py, loaded by path under a private name (see the module docstring)."""
    local_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(local_dir, "faults", "worker_hooks.py")
    spec = importlib.util.spec_from_file_location("_local_fault_hooks", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    faults = module.load(config_json)
    faults.install_botocore()
    return faults


def _load_handler(spec: str) -> Any:
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise ValueError(f"handler {spec!r} is not module.function")
    module = importlib.import_module(module_name.replace("/", "."))
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'") from None


def main() -> int:  # noqa: PLR0915 - the whole runtime loop, kept in one readable place
    parser = argparse.ArgumentParser()
    parser.add_argument("--response-fd", type=int, required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--function-arn", required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--faults", default="")
    args = parser.parse_args()
    if args.parent_pid:
        _die_with_parent(args.parent_pid)

    # The handler must not see local/ on sys.path (python -P already keeps it off).
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us

    requests = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    responses = os.fdopen(args.response_fd, "wb", buffering=0)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    def send(message: dict[str, Any], payload: str | None = None) -> None:
        """One line to the stack; `payload`: the result's JSON text (_serialized), added as is."""
        line = json.dumps(message, separators=(",", ":"))
        if payload is not None:
            line = f'{line[:-1]},"payload":{payload}}}'
        responses.write(line.encode() + b"\n")

    started = time.perf_counter()
    try:
        if args.time_scale != 1.0:
            install_time_scale(args.time_scale)
        faults = _load_fault_hooks(args.faults) if args.faults else None
        handler = _load_handler(args.handler)
        if faults is not None:
            faults.wrap_step()
    except Exception as error:  # the cold start failed: report it as Lambda would
        kinds = {
            SyntaxError: "Runtime.UserCodeSyntaxError",
            ImportError: "Runtime.ImportModuleError",
            AttributeError: "Runtime.HandlerNotFound",
        }
        kind = next((name for cls, name in kinds.items() if isinstance(error, cls)), None)
        traceback.print_exc()
        send({"type": "init_error", "error": _error(error, kind)})
        return 1
    send(
        {
            "type": "ready",
            "initMs": round((time.perf_counter() - started) * 1000, 1),
            # The interpreter's start and the imports, on CPU: what a cold start's init is made of.
            "initCpuMs": round(time.process_time() * 1000, 1),
        }
    )

    for raw in requests:
        request = json.loads(raw)
        request_id = request["requestId"]
        os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{int(time.time()):08x}-{request_id.replace('-', '')[:24]}"
        if request.get("fault") == "hang":
            print(f"local fault: {args.handler} hangs until its timeout (request {request_id})", flush=True)
            while True:
                time.sleep(3600)
        context = LambdaContext(request_id, float(request["deadlineMs"]), args.function_arn)
        began, began_cpu = time.perf_counter(), time.process_time()
        payload: str | None = None
        try:
            payload, failure = _serialized(handler(request["event"], context))
        except Exception as error:
            sys.stderr.write(f"[ERROR] {type(error).__name__}: {error}\n{traceback.format_exc()}")
            failure = _error(error)
        else:
            if failure is not None:
                sys.stderr.write(f"[ERROR] {failure['errorType']}: {failure['errorMessage']}\n")
        sys.stderr.flush()
        outcome = {"ok": True} if failure is None else {"ok": False, "error": failure}
        timing = {"durationMs": round((time.perf_counter() - began) * 1000, 3), **_usage(began_cpu)}
        send({"type": "result", "id": request["id"], **outcome, **timing}, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
