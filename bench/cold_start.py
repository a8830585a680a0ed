"""Cold start of every Lambda handler module, as a ratio of `import boto3` timed in the same run.

Each sample is a FRESH `python -c` process with PYTHONPATH=lambdas and the environment infra/
gives that function (dummy values, dummy credentials, a region). Inside the child,
time.perf_counter() brackets exactly:

* import: `import taskflow.handlers.<name>`;
* init: what the first invocation builds before its first AWS call: `.get()` on the module's
  `Lazy` holders (settings, services, the HTTP resolver), then every boto3 client those objects
  would create (their `client` properties; creating a client makes no network call).

So interpreter startup is excluded; the parent also times the whole process ("process" column).
Baselines in the same run: a child doing a bare `import boto3`, and one doing
`import boto3; boto3.client("dynamodb")` (the floor for any function that talks to DynamoDB).
References: `from aws_lambda_powertools import Tracer` alone, the HTTP handler plus `Tracer()`
(what adding the Tracer would really cost it), and the WebSocket $connect authorizer
(ws_authorizer, stages with `auth: jwt`) plus its first token check: one RS256 token verified
with the key given in the environment (its first invocation also fetches the issuer's discovery
document and JWK set: network time, not measured). The report also lists which of boto3,
pydantic, PyJWT (`jwt`) and cryptography each handler has loaded after its import and after its
init. Rounds are interleaved (every subject once per
round, shuffled), after one discarded warm-up round; figures are medians.

Goal: every handler <= 2.0x the bare `import boto3`. A handler that misses it gets an
`-X importtime` breakdown: the packages it imports that `import boto3` does not, by self time,
and the taskflow modules that first import them. `--components` times each contributor alone
(its marginal cost after what a handler loads before it), which is what a fix would save.

    python -m bench.cold_start                       # 15 rounds
    python -m bench.cold_start --runs 5
    python -m bench.cold_start --components          # + the cost of each contributor
    python -m bench.cold_start --no-asset-bytecode   # as on Lambda: taskflow compiled every start
    python -m bench.cold_start --lambdas-dir /tmp/candidate/lambdas   # measure a candidate fix
    python -m bench.cold_start --importtime          # the breakdown for every handler
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# The Lambda asset's package (taskflow) names the functions' environment variables.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lambdas"))

from taskflow import env_vars

LAMBDAS_DIR: Final = Path(__file__).resolve().parent.parent / "lambdas"
REGION: Final = "us-east-1"
GOAL_RATIO: Final = 2.0
HANDLERS: Final = (
    "http_api",
    "enqueue",
    "processor",
    "dlq_consumer",
    "notifier",
    "ws_connect",
    "ws_disconnect",
    "ws_default",
    "ws_authorizer",
)
# Modules whose loading the report shows: after the handler's import, and after its init.
WATCHED_MODULES: Final = ("boto3", "pydantic", "jwt", "cryptography")

# What infra/ sets on every function (infra/lambda_function.py: LambdaDefaults.environment).
COMMON_ENV: Final = {
    env_vars.STAGE: "bench",
    env_vars.POWERTOOLS_SERVICE_NAME: "taskflow",
    env_vars.POWERTOOLS_METRICS_NAMESPACE: "TaskBackend",
    env_vars.POWERTOOLS_LOG_LEVEL: "INFO",
    env_vars.PYDANTIC_DISABLE_PLUGINS: "__all__",
}
_TABLE: Final = "TaskBackend-bench-TaskTable"
_CONNECTIONS: Final = "TaskBackend-bench-ConnectionTable"
_QUEUE_URL: Final = f"https://sqs.{REGION}.amazonaws.com/123456789012/TaskBackend-bench-TaskQueue"
# Per function, the variables infra/ adds (infra/http_api.py, task_pipeline.py, websocket_api.py);
# the names match the synthesized templates' Environment.Variables.
FUNCTION_ENV: Final[Mapping[str, Mapping[str, str]]] = {
    "http_api": {
        env_vars.TASK_TABLE_NAME: _TABLE,
        env_vars.TASK_LIST_SHARDS: "16",
        env_vars.CORS_ORIGINS: "https://app.example.com",
        env_vars.CORS_HEADERS: "Content-Type,Authorization,X-Api-Key",
        env_vars.ALLOW_FAULT_INJECTION: "false",
    },
    "enqueue": {env_vars.TASK_QUEUE_URL: _QUEUE_URL},
    "processor": {
        env_vars.TASK_TABLE_NAME: _TABLE,
        env_vars.TASK_LIST_SHARDS: "16",
        env_vars.TASK_QUEUE_URL: _QUEUE_URL,
        env_vars.FAILURE_RATE: "0.0",
        env_vars.FAILURE_SEED: "",
        env_vars.ALLOW_FAULT_INJECTION: "false",
        env_vars.MAX_RECEIVE_COUNT: "5",
        env_vars.BACKOFF_BASE_SECONDS: "5",
        env_vars.BACKOFF_CAP_SECONDS: "900",
    },
    "dlq_consumer": {
        env_vars.TASK_TABLE_NAME: _TABLE,
        env_vars.TASK_LIST_SHARDS: "16",
        env_vars.MAX_RECEIVE_COUNT: "5",
    },
    "notifier": {
        env_vars.CONNECTION_TABLE_NAME: _CONNECTIONS,
        env_vars.WEBSOCKET_CALLBACK_URL: f"https://abc123.execute-api.{REGION}.amazonaws.com/bench",
    },
    "ws_connect": {env_vars.CONNECTION_TABLE_NAME: _CONNECTIONS, env_vars.CONNECTION_TTL_SECONDS: "7800"},
    "ws_disconnect": {env_vars.CONNECTION_TABLE_NAME: _CONNECTIONS},
    # A ping needs nothing; the resume (built on the first resume frame) reads tasks and posts.
    "ws_default": {
        env_vars.TASK_TABLE_NAME: _TABLE,
        env_vars.TASK_LIST_SHARDS: "16",
        env_vars.WEBSOCKET_CALLBACK_URL: f"https://abc123.execute-api.{REGION}.amazonaws.com/bench",
        env_vars.RESUME_MAX_CHANGES: "500",
        env_vars.RESUME_WINDOW_SECONDS: "86400",
    },
    # Stages with `auth: jwt`. The issuer is unreachable on purpose: the keys are fetched (OIDC
    # discovery, then the JWK set) on the first verification, never at import or init.
    "ws_authorizer": {
        env_vars.JWT_ISSUER: "http://127.0.0.1:1/issuer",
        env_vars.JWT_AUDIENCE: "bench-client-id",
    },
}

# The child program. Only `sys` and `time` (built in) are imported before the clock starts; the report is
# printed after it stops, as the last line of stdout.
_CHILD: Final = """\
import sys, time
_t0 = time.perf_counter()
{import_code}
_t1 = time.perf_counter()
_at_import = [_name for _name in {watched!r} if _name in sys.modules]
_clients = []
{init_code}
_t2 = time.perf_counter()
import json
print(json.dumps({{"import": _t1 - _t0, "init": _t2 - _t1, "clients": _clients,
                  "boto3": "boto3" in sys.modules, "modules": len(sys.modules),
                  "at_import": _at_import,
                  "at_init": [_name for _name in {watched!r} if _name in sys.modules]}}))
"""

# First-invocation initialisation of a handler module (`_module`): build every Lazy holder, then
# every boto3 client reachable from what they built (objects of taskflow classes with a `client`
# property: repositories, queue and connections clients).
_HANDLER_INIT: Final = """\
from taskflow.lazy import Lazy as _Lazy

def _touch_clients(obj, seen, depth=0):
    if depth > 4 or id(obj) in seen or not type(obj).__module__.startswith("taskflow."):
        return
    seen.add(id(obj))
    if isinstance(getattr(type(obj), "client", None), property):
        _clients.append(obj.client.meta.service_model.service_name)
    for value in getattr(obj, "__dict__", {}).values():
        _touch_clients(value, seen, depth + 1)

_seen = set()
for _holder in [value for value in vars(_module).values() if isinstance(value, _Lazy)]:
    _touch_clients(_holder.get(), _seen)
"""


_MODEL = "import pydantic\nclass _Model(pydantic.BaseModel):\n    x: int\n"
_RESOLVER = "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
_CALLBACK = f"https://abc123.execute-api.{REGION}.amazonaws.com/bench"
# --components: (what, used by, already loaded, measured). Each cost is marginal: timed after what
# a handler has loaded before it, so the rows add up to roughly a handler's figure.
COMPONENTS: Final = (
    ("Powertools package (Logger, Metrics)", "all", "import boto3", "import aws_lambda_powertools"),
    ("first boto3 client (dynamodb)", "all but ws_default", "import boto3", 'boto3.client("dynamodb")'),
    (
        "second client (apigatewaymanagementapi)",
        "notifier",
        'import boto3\nboto3.client("dynamodb")',
        f'boto3.client("apigatewaymanagementapi", endpoint_url="{_CALLBACK}")',
    ),
    ("pydantic + first model class", "http_api", "import boto3, aws_lambda_powertools", _MODEL),
    (
        "taskflow settings, domain, repositories",
        "all but ws_default",
        "import boto3, aws_lambda_powertools\n" + _MODEL,
        "import taskflow.settings, taskflow.domain.task, taskflow.domain.messages\n"
        "import taskflow.repositories.task_repository, taskflow.repositories.connection_repository",
    ),
    (
        "Powertools BatchProcessor",
        "processor, dlq_consumer",
        "import boto3, aws_lambda_powertools",
        "import aws_lambda_powertools.utilities.batch",
    ),
    (
        "Powertools DynamoDB stream data class",
        "enqueue, notifier",
        "import boto3, aws_lambda_powertools",
        "import aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event",
    ),
    (
        "APIGatewayHttpResolver()",
        "http_api",
        "import boto3, aws_lambda_powertools\n" + _MODEL,
        _RESOLVER + "APIGatewayHttpResolver()",
    ),
    (
        "+ enable_validation=True (OpenAPI)",
        "http_api",
        "import boto3, aws_lambda_powertools\n" + _MODEL + _RESOLVER,
        "import aws_lambda_powertools.event_handler.openapi.params\n"
        "APIGatewayHttpResolver(enable_validation=True)",
    ),
    (
        "Tracer() (X-Ray SDK, patches libraries)",
        "none (not used)",
        "import boto3, aws_lambda_powertools",
        "from aws_lambda_powertools import Tracer\nTracer()",
    ),
)


@dataclass(frozen=True)
class Subject:
    label: str
    kind: str  # "baseline", "handler", "reference" or "component"
    import_code: str  # timed as "import" (for a component: loaded first, not timed)
    init_code: str  # timed as "init"
    environment: Mapping[str, str]
    used_by: str = ""  # components: the handlers that pay for it

    def program(self) -> str:
        return _CHILD.format(import_code=self.import_code, init_code=self.init_code, watched=WATCHED_MODULES)


@dataclass
class Samples:
    inside: list[float] = field(default_factory=list)  # import + init, seconds
    imports: list[float] = field(default_factory=list)
    inits: list[float] = field(default_factory=list)
    process: list[float] = field(default_factory=list)  # whole child, seconds
    clients: list[str] = field(default_factory=list)
    boto3_loaded: bool = False
    at_import: list[str] = field(default_factory=list)  # WATCHED_MODULES loaded by the import
    at_init: list[str] = field(default_factory=list)  # ... and after the init


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def child_environment(
    function_env: Mapping[str, str], pythonpath: Path, no_bytecode: bool, extra: Mapping[str, str]
) -> dict[str, str]:
    """A Lambda-like environment: nothing inherited but PATH; dummy credentials, no config files."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PYTHONPATH": str(pythonpath),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "bench-function",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
        **COMMON_ENV,
        **function_env,
        **extra,
    }
    if no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def subjects(pythonpath: Path, no_bytecode: bool, extra_env: Mapping[str, str]) -> list[Subject]:
    def env(name: str | None = None) -> dict[str, str]:
        return child_environment(FUNCTION_ENV[name] if name else {}, pythonpath, no_bytecode, extra_env)

    found = [
        Subject("import boto3", "baseline", "import boto3", "", env()),
        Subject(
            'boto3 + client("dynamodb")',
            "baseline",
            "import boto3",
            'boto3.client("dynamodb")\n_clients.append("dynamodb")',
            env(),
        ),
        Subject(LIBRARIES_ONLY, "baseline", _HTTP_API_LIBRARIES, _HTTP_API_LIBRARIES_INIT, env()),
    ]
    found += [
        Subject(name, "handler", f"import taskflow.handlers.{name} as _module", _HANDLER_INIT, env(name))
        for name in HANDLERS
    ]
    found += [
        Subject("Tracer import only", "reference", "from aws_lambda_powertools import Tracer", "", env()),
        Subject(
            "http_api + Tracer()",
            "reference",
            "import taskflow.handlers.http_api as _module",
            _HANDLER_INIT + "from aws_lambda_powertools import Tracer\nTracer()\n",
            env("http_api"),
        ),
        Subject(
            FIRST_CHECK,
            "reference",
            "import taskflow.handlers.ws_authorizer as _module",
            _HANDLER_INIT + _FIRST_TOKEN_CHECK,
            {**env("ws_authorizer"), **first_check_environment(FUNCTION_ENV["ws_authorizer"])},
        ),
    ]
    return found


# The libraries the HTTP API cannot do without (issue 14 keeps pydantic validation of client input;
# docs/decisions.md keeps Powertools' resolver, Logger and Metrics), built as its first invocation
# builds them, with none of taskflow's code: the floor of http_api's figure. The model is a minimal
# one (the real TaskSubmission has more fields and checks), so this floor is, if anything, low.
LIBRARIES_ONLY: Final = "http_api libraries only"
_HTTP_API_LIBRARIES: Final = """\
import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig
from pydantic import BaseModel
"""
_HTTP_API_LIBRARIES_INIT: Final = """\
class _Submission(BaseModel):
    answer: str
    retries: int = 0
_Submission.model_validate({"answer": "42"})
Logger()
Metrics()
APIGatewayHttpResolver(cors=CORSConfig(allow_origin="https://app.example.com"), enable_validation=True)
boto3.client("dynamodb")
_clients.append("dynamodb")
"""

FIRST_CHECK: Final = "ws_authorizer + 1st token"
# After the authorizer's init: verify one RS256 token the way its first invocation does (PyJWK
# from the JWK set, signature, claims), with the key given instead of fetched (the two requests
# to the issuer are network time, not measurable here).
_FIRST_TOKEN_CHECK: Final = """\
import json as _json, os as _os
from taskflow.services.token_verifier import TokenVerifier as _TokenVerifier

_settings = _module.load_settings(_module.WsAuthorizerSettings)
_verifier = _TokenVerifier.from_jwks({"keys": [_json.loads(_os.environ["BENCH_JWK"])]},
                                     issuer=_settings.jwt_issuer, audiences=_settings.jwt_audience)
assert _verifier.owner_of(_os.environ["BENCH_TOKEN"]) == "bench-user"
"""


def first_check_environment(function_env: Mapping[str, str]) -> dict[str, str]:
    """A fresh RSA key's public JWK and a token it signed for the authorizer's issuer and audience."""
    import jwt  # noqa: PLC0415 - only this reference needs PyJWT in the parent
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "bench", "alg": "RS256", "use": "sig"})
    now = int(time.time())
    claims = {
        "sub": "bench-user",
        "iss": function_env[env_vars.JWT_ISSUER],
        "aud": function_env[env_vars.JWT_AUDIENCE].split(",")[0],
        "iat": now,
        "exp": now + 6 * 3600,
        "token_use": "id",
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "bench"})
    return {"BENCH_JWK": json.dumps(jwk), "BENCH_TOKEN": token}


def run_child(subject: Subject, extra_flags: Sequence[str] = ()) -> tuple[dict[str, object], float, str]:
    """One fresh process: (its report, its wall time in seconds, its stderr)."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, *extra_flags, "-c", subject.program()],
        env=dict(subject.environment),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{subject.label}: child exited {completed.returncode}\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1]), wall, completed.stderr


def measure(all_subjects: list[Subject], runs: int, seed: int) -> dict[str, Samples]:
    samples = {subject.label: Samples() for subject in all_subjects}
    rng = random.Random(seed)
    for round_number in range(runs + 1):  # round 0 warms the page cache and writes .pyc files
        order = list(all_subjects)
        rng.shuffle(order)
        for subject in order:
            report, wall, _ = run_child(subject)
            if round_number == 0:
                continue
            sample = samples[subject.label]
            sample.imports.append(float(report["import"]))  # type: ignore[arg-type]
            sample.inits.append(float(report["init"]))  # type: ignore[arg-type]
            sample.inside.append(sample.imports[-1] + sample.inits[-1])
            sample.process.append(wall)
            sample.clients = list(report["clients"])  # type: ignore[call-overload]
            sample.boto3_loaded = bool(report["boto3"])
            sample.at_import = list(report["at_import"])  # type: ignore[call-overload]
            sample.at_init = list(report["at_init"])  # type: ignore[call-overload]
        if round_number:
            print(f"  round {round_number}/{runs} done", file=sys.stderr, flush=True)
    return samples


@dataclass
class ImportProfile:
    """Median `-X importtime` figures (ms) of one subject over a few runs."""

    self_by_package: dict[str, float]  # self time summed per top-level package
    entries: dict[tuple[str, str], float]  # (importer, first module of another package) -> cumulative


def import_profile(subject: Subject, repeats: int = 3) -> ImportProfile:
    by_package: dict[str, list[float]] = defaultdict(list)
    by_entry: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(repeats):
        _, _, stderr = run_child(subject, ["-X", "importtime"])
        rows = []  # (depth, name, self ms, cumulative ms), children before their parent
        for line in stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, raw_name = line[len("import time:") :].split("|")
            name = raw_name.strip()
            depth = (len(raw_name) - len(raw_name.lstrip()) - 1) // 2
            rows.append((depth, name, int(self_us) / 1000, int(cumulative_us) / 1000))
        totals: dict[str, float] = defaultdict(float)
        entries: dict[tuple[str, str], float] = defaultdict(float)
        parents: list[tuple[int, str]] = []  # walking backwards, a parent comes before its children
        for depth, name, self_ms, cumulative_ms in reversed(rows):
            while parents and parents[-1][0] >= depth:
                parents.pop()
            importer = parents[-1][1] if parents else "<handler code>"
            totals[name.split(".")[0]] += self_ms
            if importer.split(".")[0] != name.split(".")[0]:
                entries[(importer, name)] += cumulative_ms
            parents.append((depth, name))
        for package, value in totals.items():
            by_package[package].append(value)
        for entry, value in entries.items():
            by_entry[entry].append(value)

    def median(values: list[float]) -> float:
        return statistics.median(values + [0.0] * (repeats - len(values)))

    return ImportProfile(
        {package: median(values) for package, values in by_package.items()},
        {entry: median(values) for entry, values in by_entry.items()},
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def print_table(all_subjects: list[Subject], samples: dict[str, Samples]) -> list[str]:
    """Print the figures; returns the handlers that miss the goal."""
    bare = statistics.median(samples["import boto3"].inside)
    floor = statistics.median(samples['boto3 + client("dynamodb")'].inside)
    header = (
        f"{'subject':<28} {'median':>7} {'p90':>7} {'import':>7} {'init':>7} "
        f"{'x boto3':>7} {'x +client':>9} {'process':>7}  {'goal <= 2.0x':<12} clients"
    )
    print(header)
    print(f"{'':<28} {'ms':>7} {'ms':>7} {'ms':>7} {'ms':>7} {'':>7} {'':>9} {'ms':>7}")
    print("-" * len(header))
    missed = []
    previous_kind = all_subjects[0].kind
    for subject in all_subjects:
        if subject.kind != previous_kind:
            print()
            previous_kind = subject.kind
        sample = samples[subject.label]
        median = statistics.median(sample.inside)
        verdict = ""
        if subject.kind == "handler":
            verdict = "ok" if median / bare <= GOAL_RATIO else "MISSED"
            if verdict == "MISSED":
                missed.append(subject.label)
        clients = ",".join(sample.clients) or ("-" if sample.boto3_loaded else "- (no boto3)")
        print(
            f"{subject.label:<28} {ms(median)} {ms(percentile(sample.inside, 0.9))} "
            f"{ms(statistics.median(sample.imports))} {ms(statistics.median(sample.inits))} "
            f"{median / bare:6.2f}x {median / floor:8.2f}x {ms(statistics.median(sample.process))}  "
            f"{verdict:<12} {clients}"
        )
    tracer_only = statistics.median(samples["Tracer import only"].inside)
    with_tracer = statistics.median(samples["http_api + Tracer()"].inside)
    http_api = statistics.median(samples["http_api"].inside)
    print()
    print(
        f"Tracer: `from aws_lambda_powertools import Tracer` alone costs {tracer_only * 1000:.0f} ms"
        f" ({tracer_only / bare:.2f}x import boto3), but that is the Powertools package every handler"
        f" already loads for Logger and Metrics;\nTracer() itself (X-Ray SDK, patching) adds"
        f" {(with_tracer - http_api) * 1000:.0f} ms to http_api"
        f" ({with_tracer / bare:.2f}x instead of {http_api / bare:.2f}x)."
    )
    libraries = statistics.median(samples[LIBRARIES_ONLY].inside)
    print(
        f"http_api: the libraries it cannot do without (boto3 and a DynamoDB client, Powertools"
        f" Logger, Metrics and resolver with validation, pydantic and one small model), with none"
        f" of taskflow's code, take {libraries / bare:.2f}x import boto3 ({http_api / bare:.2f}x"
        f" with it)."
    )
    authorizer = statistics.median(samples["ws_authorizer"].inside)
    first_check = statistics.median(samples[FIRST_CHECK].inside)
    print(
        f"ws_authorizer: its first token check (PyJWK, RS256 signature, claims; the key given, not"
        f" fetched) adds {max(0.0, first_check - authorizer) * 1000:.0f} ms"
        + (" (within the noise of these rounds)" if first_check < authorizer else "")
        + f" ({first_check / bare:.2f}x instead of {authorizer / bare:.2f}x)."
    )
    print(f"\nwhich of {', '.join(WATCHED_MODULES)} are loaded after the import | added by the init:")
    for subject in all_subjects:
        if subject.kind != "handler" and subject.label != FIRST_CHECK:
            continue
        sample = samples[subject.label]
        added = [name for name in sample.at_init if name not in sample.at_import]
        print(f"  {subject.label:<28} {', '.join(sample.at_import) or '-':<40} | {', '.join(added) or '-'}")
    return missed


def print_import_breakdown(subject: Subject, baseline: ImportProfile, top: int = 10) -> None:
    """What the subject imports that `import boto3` does not: self time per top-level package, and
    where taskflow code first pulls each one in. -X importtime inflates times: read the shares."""
    profile = import_profile(subject)
    new = {
        package: value
        for package, value in profile.self_by_package.items()
        if package not in baseline.self_by_package
    }
    shared = sum(profile.self_by_package.values()) - sum(new.values())
    shared_delta = shared - sum(baseline.self_by_package.values())
    total = sum(new.values())
    print(f"\n{subject.label}: -X importtime, packages `import boto3` does not load (self time)")
    for package, value in sorted(new.items(), key=lambda item: item[1], reverse=True)[:top]:
        if value < 0.5:
            break
        print(f"  {package:<36} {value:7.1f} ms  {value / total:4.0%}")
    print(f"  {'(all of them)':<36} {total:7.1f} ms")
    print(f"  {'(packages boto3 loads too: delta)':<36} {shared_delta:+7.1f} ms")
    print("  where taskflow code first imports them (cumulative):")
    # Per (taskflow importer, package): the summed cumulative time of the imports and the biggest.
    totals: dict[tuple[str, str], float] = defaultdict(float)
    biggest: dict[tuple[str, str], tuple[float, str]] = {}
    for (importer, name), value in profile.entries.items():
        key = (importer, name.split(".")[0])
        if importer.startswith("taskflow.") and key[1] not in baseline.self_by_package:
            totals[key] += value
            biggest[key] = max(biggest.get(key, (0.0, name)), (value, name))
    for key, value in sorted(totals.items(), key=lambda item: item[1], reverse=True)[:top]:
        if value < 2.0:
            break
        print(f"  {key[0]:<36} -> {biggest[key][1]:<52} {value:7.1f} ms")


def component_subjects(pythonpath: Path, no_bytecode: bool, extra_env: Mapping[str, str]) -> list[Subject]:
    env = child_environment(FUNCTION_ENV["http_api"], pythonpath, no_bytecode, extra_env)
    baseline = Subject("import boto3", "baseline", "import boto3", "", env)
    return [baseline] + [
        Subject(label, "component", loaded, measured, env, used_by)
        for label, used_by, loaded, measured in COMPONENTS
    ]


def print_components(all_subjects: list[Subject], samples: dict[str, Samples]) -> None:
    bare = statistics.median(samples["import boto3"].inside)
    print(f"\n{'marginal cost of':<42} {'used by':<24} {'median':>7} {'p90':>7} {'x boto3':>7}")
    print("-" * 91)
    bare_p90 = percentile(samples["import boto3"].inside, 0.9)
    print(f"{'import boto3 (baseline)':<42} {'':<24} {ms(bare)} {ms(bare_p90)}")
    for subject in all_subjects[1:]:
        values = samples[subject.label].inits  # the measured part; `import_code` was loaded before
        median = statistics.median(values)
        print(
            f"{subject.label:<42} {subject.used_by:<24} {ms(median)} {ms(percentile(values, 0.9))} "
            f"{median / bare:6.2f}x"
        )


def asset_copy(source: Path, directory: Path) -> Path:
    """`source` as the Lambda asset ships it: no __pycache__ (see infra/lambda_function.py)."""
    target = directory / "lambdas"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the per-round shuffle")
    parser.add_argument(
        "--no-asset-bytecode",
        action="store_true",
        help="import taskflow from a copy without .pyc and never write any, as on Lambda",
    )
    parser.add_argument(
        "--lambdas-dir",
        type=Path,
        default=LAMBDAS_DIR,
        help="the folder holding the taskflow package (default lambdas/; e.g. a copy with a candidate fix)",
    )
    parser.add_argument(
        "--importtime", action="store_true", help="print the -X importtime breakdown for every handler"
    )
    parser.add_argument(
        "--components",
        action="store_true",
        help="also time each contributor on its own (marginal, after what handlers load before it)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra variable for every child (what-if runs, e.g. PYDANTIC_DISABLE_PLUGINS=__all__)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if any("=" not in pair for pair in args.env):
        parser.error("--env takes NAME=VALUE")
    extra_env = dict(pair.split("=", 1) for pair in args.env)

    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        lambdas_dir = args.lambdas_dir.resolve()
        pythonpath = asset_copy(lambdas_dir, Path(scratch)) if args.no_asset_bytecode else lambdas_dir
        all_subjects = subjects(pythonpath, args.no_asset_bytecode, extra_env)
        print(
            f"cold start: {args.runs} interleaved rounds x {len(all_subjects)} subjects, "
            f"python {sys.version.split()[0]}, PYTHONPATH={pythonpath}"
            + (" (no .pyc, as on Lambda)" if args.no_asset_bytecode else "")
            + "".join(f" {name}={value}" for name, value in extra_env.items()),
            flush=True,
        )
        started = time.perf_counter()
        samples = measure(all_subjects, args.runs, args.seed)
        print(f"measured in {time.perf_counter() - started:.0f} s; medians of {args.runs} runs each\n")
        missed = print_table(all_subjects, samples)
        print()
        if missed:
            print(f"goal missed (> {GOAL_RATIO}x import boto3): {', '.join(missed)}")
        else:
            print(f"goal met: every handler <= {GOAL_RATIO}x import boto3")
        to_explain = HANDLERS if args.importtime else missed
        if to_explain:
            by_label = {subject.label: subject for subject in all_subjects}
            baseline = import_profile(by_label["import boto3"])
            for label in to_explain:
                print_import_breakdown(by_label[label], baseline)
        if args.components:
            parts = component_subjects(pythonpath, args.no_asset_bytecode, extra_env)
            print(f"\ncomponents: {args.runs} interleaved rounds x {len(parts)} subjects", flush=True)
            print_components(parts, measure(parts, args.runs, args.seed))
        elif missed:
            print("\n(--components times each contributor on its own)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
