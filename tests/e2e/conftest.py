"""The end-to-end fixtures: the dev stack from cdk.out, started once per test session.

Started on free ports with --time-scale 0.01 (visibility timeouts and backoffs of seconds
become about one second) and --failure-rate 0 (tasks fail only when they ask to).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import Api, Aws, Frames, ensure_synthesized

from local.launcher import LocalStackProcess

TIME_SCALE = "0.01"


@pytest.fixture(scope="session")
def dev_stack() -> Iterator[LocalStackProcess]:
    cdk_out = ensure_synthesized()
    arguments = [
        "--cdk-out",
        str(cdk_out),
        "--stage",
        "dev",
        "--time-scale",
        TIME_SCALE,
        "--failure-rate",
        "0",
    ]
    with LocalStackProcess(arguments) as stack:
        yield stack


@pytest.fixture(scope="session")
def api(dev_stack: LocalStackProcess) -> Api:
    return Api(dev_stack.http_url)


@pytest.fixture(scope="session")
def aws(dev_stack: LocalStackProcess) -> Aws:
    return Aws(dev_stack.moto_url)


@pytest.fixture
def frames(dev_stack: LocalStackProcess) -> Iterator[Frames]:
    client = Frames(dev_stack.ws_url)
    yield client
    client.close()
