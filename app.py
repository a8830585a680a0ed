#!/usr/bin/env python3
"""CDK entry point: one TaskBackend stack per stage configured in cdk.json (`stages`).

    npx cdk synth                    # every stage, checked by cdk-nag (AwsSolutions)
    npx cdk deploy TaskBackend-dev   # one stage

cdk-nag runs as a CDK validation plugin: synth fails on any finding, error or warning, that
infra/nag_suppressions.py does not acknowledge (report: cdk.out/validation-report.json).
"""

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

# The Lambda asset's package (taskflow) shares env var names and key schema with infra/.
sys.path.insert(0, str(Path(__file__).resolve().parent / "lambdas"))

from infra.config import StageConfigError, load_stages
from infra.stack import TaskBackendStack, stack_name_for

app = cdk.App()
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
try:
    stages = load_stages(app.node.try_get_context("stages"))
except StageConfigError as invalid:  # one line naming the stage and the setting, no traceback
    sys.exit(f"error: cdk.json: {invalid}")
for stage in stages.values():
    TaskBackendStack(app, stack_name_for(stage), stage=stage)
app.synth()
