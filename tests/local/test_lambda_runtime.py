"""Functions run in warm worker processes with a Lambda-like context; timeouts kill the worker."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from local_support import FIXTURE_ASSEMBLY

from local.runtime.bootstrap import scaled_seconds
from local.runtime.pool import FunctionPool, RuntimeFunction

CODE = (FIXTURE_ASSEMBLY / "functions").resolve()


def function(handler: str, timeout: float = 5.0, **overrides: Any) -> RuntimeFunction:
    values: dict[str, Any] = {
        "key": "Probe",
        "display_name": "Probe",
        "name": "Stack-Probe",
        "arn": "arn:aws:lambda:us-east-1:123456789012:function:Stack-Probe",
        "handler": handler,
        "timeout_seconds": timeout,
        "memory_size": 256,
        "code_dir": CODE,
        "environment": {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(CODE),
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_LAMBDA_FUNCTION_NAME": "Stack-Probe",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MARKER": "from-the-template",
        },
        "max_workers": 2,
    }
    values.update(overrides)
    return RuntimeFunction(**values)


def run(pool_function: RuntimeFunction, tmp_path: Path, *events: Any) -> list[Any]:
    async def main() -> list[Any]:
        pool = FunctionPool(pool_function, tmp_path)
        try:
            return [await pool.invoke(event) for event in events]
        finally:
            await pool.stop()

    return asyncio.run(main())


def test_a_handler_gets_the_event_and_a_lambda_context(tmp_path):
    (result,) = run(function("fixture_handlers.probe.ok"), tmp_path, {"n": 1})
    assert result.outcome == "ok"
    assert result.payload["echo"] == {"n": 1}
    assert result.payload["function"] == "Stack-Probe"
    assert 0 < result.payload["remaining"] <= 5000


def test_the_worker_has_the_functions_environment_and_path(tmp_path):
    (result,) = run(function("fixture_handlers.probe.env"), tmp_path, {"names": ["MARKER", "PYTHONPATH"]})
    assert result.payload == {"MARKER": "from-the-template", "PYTHONPATH": str(CODE)}


def test_an_exception_is_an_error_result_like_lambdas(tmp_path):
    (result,) = run(function("fixture_handlers.probe.fail"), tmp_path, {})
    assert result.outcome == "error"
    assert result.error is not None
    assert (result.error["errorType"], result.error["errorMessage"]) == ("ValueError", "failed on purpose")
    assert "ValueError: failed on purpose" in (tmp_path / "Probe.log").read_text()


def test_a_result_over_lambdas_6_mb_is_an_error_like_lambdas(tmp_path):
    limit = 6 * 1024 * 1024
    fits, too_large = run(
        function("fixture_handlers.probe.ok"), tmp_path, {"blob": "x" * (limit - 200)}, {"blob": "x" * limit}
    )
    assert fits.outcome == "ok"
    assert too_large.outcome == "error"
    assert too_large.error is not None
    assert too_large.error["errorType"] == "Function.ResponseSizeTooLarge"
    assert f"maximum allowed payload size ({limit} bytes)" in too_large.error["errorMessage"]


def test_a_result_that_is_not_json_is_a_marshal_error_like_lambdas(tmp_path):
    (result,) = run(function("fixture_handlers.probe.unserializable"), tmp_path, {})
    assert result.outcome == "error"
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.MarshalError"
    assert "not JSON serializable" in result.error["errorMessage"]


def test_a_timeout_kills_the_worker_and_the_next_invocation_gets_a_fresh_one(tmp_path):
    async def main() -> tuple[Any, Any, int]:
        pool = FunctionPool(function("fixture_handlers.probe.hang", timeout=1.0), tmp_path)
        ok_pool = FunctionPool(function("fixture_handlers.probe.ok", timeout=1.0), tmp_path)
        try:
            hung = await pool.invoke({})
            pool.function = ok_pool.function  # same pool, a handler that returns
            after = await pool.invoke({"after": True})
            return hung, after, pool.cold_starts
        finally:
            await pool.stop()
            await ok_pool.stop()

    hung, after, cold_starts = asyncio.run(main())
    assert hung.outcome == "timeout"
    assert 900 < hung.duration_ms < 3000
    assert after.outcome == "ok"
    assert cold_starts >= 2


@pytest.mark.parametrize(
    ("free_bytes", "named"), [(4096, True), (10**10, False)], ids=["log-disk-full", "space"]
)
def test_a_worker_that_exits_names_a_full_log_folder_as_the_likely_cause(
    tmp_path, monkeypatch, free_bytes, named
):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=free_bytes))

    (result,) = run(function("fixture_handlers.probe.exit_worker"), tmp_path, {})

    assert result.outcome == "error"
    assert result.error["errorType"] == "Runtime.ExitError"
    message = result.error["errorMessage"]
    assert message.startswith("worker exited: it ended before answering")
    assert (f"only {free_bytes} bytes free in the log folder {tmp_path}" in message) is named


def test_the_hang_fault_makes_one_invocation_time_out(tmp_path):
    async def main() -> list[str]:
        pool = FunctionPool(function("fixture_handlers.probe.ok", timeout=1.0), tmp_path)
        pool.inject_hangs(1)
        try:
            return [(await pool.invoke({})).outcome for _ in range(2)]
        finally:
            await pool.stop()

    assert asyncio.run(main()) == ["timeout", "ok"]


def test_an_import_error_is_reported_on_invoke(tmp_path):
    (result,) = run(function("fixture_handlers.nope.handler"), tmp_path, {})
    assert result.outcome == "error"
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"


def test_the_handler_cannot_import_the_local_stacks_modules(tmp_path):
    names = ["pool", "code_reload", "local", "fixture_handlers", "boto3"]  # local/runtime/ and local/
    (result,) = run(function("fixture_handlers.probe.imports"), tmp_path, {"names": names})
    assert result.payload == {
        "pool": False,
        "code_reload": False,
        "local": False,
        "fixture_handlers": True,
        "boto3": True,
    }


@pytest.mark.parametrize(
    ("seconds", "scale", "expected"), [(0, 0.01, 0), (2, 0.01, 1), (180, 0.01, 2), (60, 1.0, 60)]
)
def test_time_scale_rounds_up_to_whole_seconds(seconds, scale, expected):
    assert scaled_seconds(seconds, scale) == expected


def test_the_time_scale_hook_scales_the_visibility_a_function_sets(tmp_path):
    (scaled,) = run(function("fixture_handlers.probe.visibility", time_scale=0.01), tmp_path, {"seconds": 60})
    (unscaled,) = run(function("fixture_handlers.probe.visibility"), tmp_path, {"seconds": 60})
    assert '"VisibilityTimeout": 1' in scaled.payload
    assert '"VisibilityTimeout": 60' in unscaled.payload
