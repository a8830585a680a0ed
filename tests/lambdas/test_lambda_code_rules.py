"""Rules of the Lambda code that no single behaviour test would catch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskflow import env_vars

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
PACKAGE = LAMBDAS / "taskflow"
# Every handler module (tests/infra/test_functions_template.py: each one is a function of a cdk.json stage).
HANDLERS = sorted(path.stem for path in (PACKAGE / "handlers").glob("*.py") if path.stem != "__init__")
AWS_SDK = ("boto3", "botocore")


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_only_repositories_and_clients_use_the_aws_sdk() -> None:
    users = {
        path.relative_to(PACKAGE).parts[0]
        for path in _sources()
        if any(module.split(".")[0] in AWS_SDK for module in _imported_modules(path))
    }
    assert users <= {"repositories", "clients"}


# PyJWT is deployed in a layer of the $connect authorizer only: nothing else may import it.
JWT_USERS = {"clients/oidc_keys.py", "services/token_verifier.py"}


def test_only_the_authorizers_modules_import_pyjwt() -> None:
    users = {
        str(path.relative_to(PACKAGE))
        for path in _sources()
        if any(module.split(".")[0] == "jwt" for module in _imported_modules(path))
    }
    assert users == JWT_USERS


@pytest.mark.parametrize("handler", [name for name in HANDLERS if name != "ws_authorizer"])
def test_functions_without_the_jwt_layer_never_load_pyjwt(handler: str, offline_env: dict[str, str]) -> None:
    # Import the handler and build its Lazy holders, as its first invocation does.
    env = {**os.environ, "PYTHONPATH": str(LAMBDAS)}
    code = (
        f"import sys, taskflow.handlers.{handler} as module\n"
        "from taskflow.lazy import Lazy\n"
        "for holder in [v for v in vars(module).values() if isinstance(v, Lazy)]:\n"
        "    holder.get()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'jwt'))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_domain_imports_nothing_but_itself_the_stdlib_and_pydantic() -> None:
    for path in (PACKAGE / "domain").glob("*.py"):
        for module in _imported_modules(path):
            top = module.split(".")[0]
            assert (
                top in sys.stdlib_module_names
                or top in {"pydantic", "__future__"}
                or module.startswith("taskflow.domain")
            ), f"{path.name} imports {module}"


def test_nothing_sleeps() -> None:
    offenders = [path.name for path in _sources() if "sleep(" in path.read_text()]
    assert offenders == []


def test_only_the_connection_table_is_scanned() -> None:
    scanners = [path.name for path in _sources() if ".scan(" in path.read_text()]
    assert scanners == ["connection_repository.py"]


def test_no_hidden_environment_defaults() -> None:
    offenders = [
        path.name
        for path in _sources()
        if "environ.get(" in path.read_text() or "getenv(" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.parametrize("handler", HANDLERS)
def test_importing_a_handler_creates_no_aws_client(handler: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(LAMBDAS), env_vars.POWERTOOLS_SERVICE_NAME: "taskflow"}
    env.pop("AWS_ENDPOINT_URL", None)
    code = f"import sys, taskflow.handlers.{handler}; print('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# The functions that validate client input with pydantic (taskflow.domain.submission, the resolver);
# the others, the processor included (its Task is a plain dataclass), must not pay for it at cold start.
TASK_MODEL_USERS = ("http_api",)


@pytest.mark.parametrize("handler", [name for name in HANDLERS if name not in TASK_MODEL_USERS])
def test_functions_without_task_models_never_import_pydantic(
    handler: str, offline_env: dict[str, str]
) -> None:
    # Import the handler and build its Lazy holders (settings, services, repositories), as its
    # first invocation does, in a fresh interpreter.
    env = {**os.environ, "PYTHONPATH": str(LAMBDAS)}
    code = (
        f"import sys, taskflow.handlers.{handler} as module\n"
        "from taskflow.lazy import Lazy\n"
        "for holder in [v for v in vars(module).values() if isinstance(v, Lazy)]:\n"
        "    holder.get()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'pydantic'))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("handler", HANDLERS)
def test_no_function_loads_the_powertools_parser_models(handler: str) -> None:
    # Powertools' batch utility imports them when pydantic is loaded before it; no function uses them.
    env = {**os.environ, "PYTHONPATH": str(LAMBDAS), env_vars.POWERTOOLS_SERVICE_NAME: "taskflow"}
    code = (
        f"import sys, taskflow.handlers.{handler}\n"
        "print(any(name.startswith('aws_lambda_powertools.utilities.parser') for name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
