#!/usr/bin/env python3
"""CDK entry point: one TaskBackend stack per stage configured in cdk.json (`stages`).

    npx cdk synth                    # every stage
    npx cdk deploy TaskBackend-dev   # one stage
"""

import sys
from pathlib import Path

import aws_cdk as cdk

# The Lambda asset's package (taskflow) shares env var names and key schema with infra/.
sys.path.insert(0, str(Path(__file__).resolve().parent / "lambdas"))

from infra.config import load_stages  # noqa: E402
from infra.stack import TaskBackendStack, stack_name_for  # noqa: E402

app = cdk.App()
for stage in load_stages(app.node.try_get_context("stages")).values():
    TaskBackendStack(app, stack_name_for(stage), stage=stage)
app.synth()
