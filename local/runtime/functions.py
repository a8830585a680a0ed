"""The template's functions as worker pools (local/runtime/pool.py): environment, code, concurrency.

What a worker gets in place of Lambda's environment and layers: docs/local-stack.md, "What comes
from the template".
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from local.options import Fault, Options
from local.runtime.code_reload import CodeWatcher
from local.runtime.pool import FunctionPool, RuntimeFunction
from local.template.intrinsics import IntrinsicError, Resolver
from local.template.model import FunctionSpec, StackModel
from local.template.reader import layer_packages, layer_summary
from local.template.report import FindingKind
from local.template.values import LocalValues

REPO_ROOT = Path(__file__).resolve().parents[2]


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def rewrite_api_urls(value: str, replacements: dict[str, str]) -> str:
    for remote, local in replacements.items():
        value = value.replace(remote, local)
    return value


def build_pools(
    model: StackModel,
    values: LocalValues,
    options: Options,
    *,
    endpoint: str,
    replacements: dict[str, str],
    watcher: CodeWatcher | None,
    issuer_value: Callable[[str], str] | None,
    notice: Callable[[str], None],
) -> dict[str, FunctionPool]:
    """A pool for every function that can run here (its code is a folder or inline)."""
    resolver = model.resolver(values)
    pools: dict[str, FunctionPool] = {}
    for logical_id, spec in model.functions.items():
        code_dir = _code_dir(spec, model.stack_name, watcher)
        if code_dir is None:
            continue
        max_workers = options.max_concurrency
        if spec.reserved_concurrency is not None:
            max_workers = max(1, min(max_workers, spec.reserved_concurrency))
        environment = function_environment(
            spec, resolver, code_dir, options=options, endpoint=endpoint, replacements=replacements,
            issuer_value=issuer_value,
        )  # fmt: skip
        function = RuntimeFunction(
            key=logical_id,
            display_name=spec.display_name,
            name=spec.name,
            arn=str(values.get_att(logical_id, "Arn")),
            handler=spec.handler,
            timeout_seconds=float(spec.timeout),
            memory_size=spec.memory_size,
            code_dir=code_dir,
            environment=environment,
            max_workers=max_workers,
            time_scale=options.time_scale,
            faults=options.chaos.worker_config(spec.display_name) if options.chaos.active else "",
        )
        pools[logical_id] = pool = FunctionPool(function, options.log_dir / model.stack_name, notice=notice)
        if watcher is not None:
            watcher.bind(pool)
    _note_layers_and_runtimes(model)
    _apply_faults(model, pools, options.faults)
    return pools


def function_environment(
    spec: FunctionSpec,
    resolver: Resolver,
    code_dir: Path,
    *,
    options: Options,
    endpoint: str,
    replacements: dict[str, str],
    issuer_value: Callable[[str], str] | None = None,
) -> dict[str, str]:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", tempfile.gettempdir()),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": str(code_dir),
        "PYTHONDONTWRITEBYTECODE": "1",  # keep cdk.out's asset folders as synthesized
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": options.region,
        "AWS_DEFAULT_REGION": options.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d") + "/[$LATEST]local",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "LAMBDA_TASK_ROOT": str(code_dir),
        "_HANDLER": spec.handler,
        "POWERTOOLS_TRACE_DISABLED": "true",
        # boto3 puts `app/<name>` in its User-Agent: the request meter attributes calls by it
        "AWS_SDK_UA_APP_ID": spec.display_name[:50],
    }
    if spec.log_format:
        environment["AWS_LAMBDA_LOG_FORMAT"] = spec.log_format
    for key, raw in spec.environment.items():
        try:
            value = resolver.resolve(raw)
        except IntrinsicError:
            continue  # reported by check_resolvable
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if issuer_value is not None:
            text = issuer_value(text)  # an external JWT issuer -> the local one
        environment[key] = rewrite_api_urls(text, replacements)
    if options.failure_rate is not None and "FAILURE_RATE" in spec.environment:
        environment["FAILURE_RATE"] = repr(options.failure_rate)
    return environment


def _code_dir(spec: FunctionSpec, stack_name: str, watcher: CodeWatcher | None) -> Path | None:
    if spec.asset_dir is not None and spec.asset_dir.is_dir():
        watched = watcher.code_dir(spec.asset_dir) if watcher is not None else None
        return watched or spec.asset_dir
    if spec.inline_code is not None:
        folder = (REPO_ROOT / ".local-state" / "inline" / stack_name / spec.logical_id).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        module = spec.handler.rpartition(".")[0] or "index"
        (folder / f"{module}.py").write_text(spec.inline_code)
        return folder
    return None


def _note_layers_and_runtimes(model: StackModel) -> None:
    summary = layer_summary(model)
    if summary:
        packages = [
            f"aws-lambda-powertools {package_version('aws-lambda-powertools')}",
            f"pydantic {package_version('pydantic')}",
        ]
        for layer in model.layers.values():
            packages.extend(_layer_asset_packages(model, layer.display_name, layer_packages(layer)))
        model.note(
            FindingKind.SATISFIED, summary, f"provided by this venv's packages ({', '.join(packages)})"
        )
    runtimes = sorted({spec.runtime for spec in model.functions.values()})
    if runtimes:
        model.note(
            FindingKind.SATISFIED,
            f"runtime {', '.join(runtimes)}",
            f"handlers run on this venv's Python {platform.python_version()} ({platform.machine()}), "
            "in warm worker processes; timeouts and the 6 MB result limit enforced, memory size not",
        )


def _layer_asset_packages(model: StackModel, layer: str, packages: list[tuple[str, str]]) -> list[str]:
    """The venv's versions of a local layer's packages; a missing or different one is reported."""
    shown = []
    for name, version in packages:
        installed = package_version(name)
        shown.append(f"{name} {installed}")
        if installed == "not installed":
            model.unsupported(
                f"layer {layer}",
                f"{name} {version} is not installed in this venv: importing it fails locally",
            )
        elif installed != version:
            model.approximated(f"layer {layer}", f"{name} {version} runs as the venv's {installed}")
    return shown


def _apply_faults(model: StackModel, pools: dict[str, FunctionPool], faults: list[Fault]) -> None:
    for fault in faults:
        named = [
            pool
            for lid, pool in pools.items()
            if fault.function in (lid, pool.function.display_name, pool.function.name)
            or pool.function.display_name.endswith(fault.function)
        ]
        if len(named) > 1:
            raise ValueError(f"--fault: {fault.function!r} names {len(named)} functions")
        if not named:
            raise ValueError(f"--fault: no function named {fault.function!r}")
        named[0].inject_hangs(1)
        model.note(
            FindingKind.INFO,
            f"local fault {fault.function}",
            f"{fault.kind}: its next invocation hangs until the template timeout kills it",
        )
