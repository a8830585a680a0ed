"""checkov on every stage: the skips infra/checkov_skips.py writes into the templates are exactly the
findings this app accepts, each on the resources its reason is about, each listed in docs/security.md,
and each answering a finding checkov really reports.

`make test` runs checkov itself on cdk.out (0 failed checks). The last test here runs the same
checkov (the tool environment .venv-checkov, which `make test` installs first) on templates with and
without the skips; it is skipped only where that environment was never installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from template_queries import REPO_ROOT, on_variants, stage_variant

from infra import checkov_skips
from infra.checkov_skips import Skip

SKIPS = {name: value for name, value in vars(checkov_skips).items() if isinstance(value, Skip)}
FUNCTION = "AWS::Lambda::Function"
# Stages as deployed, plus the settings that change which skips apply (template_queries.STAGE_VARIANTS).
VARIANTS = ("dev", "prod", "dev_cmk", "prod_with_reserved_processor")
QUIET = ("--skip-download", "--output", "json")  # and no version check: see _failed_checks' env
CHECKOV = Path(os.environ.get("CHECKOV", REPO_ROOT / ".venv-checkov" / "bin" / "checkov"))


def _template(name: str) -> dict[str, Any]:
    """The variant's template as JSON: a copy of its own, free to change."""
    return stage_variant(name).template.to_json()


def _skips_by_resource(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Logical id -> {check id: comment} of every resource that has checkov metadata."""
    return {
        logical_id: {entry["id"]: entry["comment"] for entry in resource["Metadata"]["checkov"]["skip"]}
        for logical_id, resource in template["Resources"].items()
        if "checkov" in resource.get("Metadata", {})
    }


def _expected_skips(template: dict[str, Any], *, own_keys: bool) -> dict[str, dict[str, str]]:
    """What the accepted findings say, resource by resource, written out independently of the Aspect."""
    connection_table = _connection_table(template)
    expected: dict[str, dict[str, str]] = {}
    for logical_id, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        skips: list[Skip] = []
        if kind == FUNCTION:
            skips = [
                checkov_skips.FUNCTION_OUTSIDE_VPC,
                checkov_skips.FUNCTION_WITHOUT_DLQ,
                checkov_skips.FUNCTION_ENVIRONMENT_WITHOUT_CMK,
            ]
            if "ReservedConcurrentExecutions" not in props:
                skips.append(checkov_skips.FUNCTION_WITHOUT_RESERVED_CONCURRENCY)
        elif kind == "AWS::Logs::LogGroup":
            skips = [checkov_skips.LOG_GROUP_WITHOUT_CMK]
        elif kind == "AWS::DynamoDB::Table":
            skips = [] if own_keys else [checkov_skips.TABLE_WITHOUT_CMK]
            if logical_id == connection_table:
                skips.append(checkov_skips.CONNECTION_TABLE_WITHOUT_PITR)
        elif kind == "AWS::SQS::Queue":
            skips = [] if own_keys else [checkov_skips.QUEUE_WITHOUT_CMK]
        if skips:
            expected[logical_id] = {skip.check_id: skip.reason for skip in skips}
    return expected


def _connection_table(template: dict[str, Any]) -> str:
    (table,) = [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::Table" and "TimeToLiveSpecification" in resource["Properties"]
    ]
    return table


@on_variants(*VARIANTS)
def test_skips_are_exactly_the_accepted_findings_on_each_resource(variant):
    template = _template(variant.name)

    found = _skips_by_resource(template)

    assert found == _expected_skips(template, own_keys=variant.stage.customer_managed_keys)


def test_a_reserved_processor_is_the_only_function_without_the_concurrency_skip():
    template = _template("prod_with_reserved_processor")
    functions = {lid: r for lid, r in template["Resources"].items() if r["Type"] == FUNCTION}

    skips = _skips_by_resource(template)

    reserved = {lid for lid, r in functions.items() if "ReservedConcurrentExecutions" in r["Properties"]}
    without_skip = {lid for lid in functions if "CKV_AWS_115" not in skips[lid]}

    assert len(reserved) == 1
    assert without_skip == reserved


def _doc_rows() -> dict[str, tuple[str, str]]:
    """Constant -> (check id, resource type), from the checkov table of docs/security.md."""
    doc = (REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    section = doc[doc.index("## checkov: accepted findings") :]
    section = section[: section.index("\n## ")]
    row = re.compile(
        r"^\| `(?P<name>[A-Z_]+)` \| `(?P<check>CKV_AWS_\d+)` \| `(?P<type>AWS::[\w:]+)` \|", re.M
    )
    return {m["name"]: (m["check"], m["type"]) for m in row.finditer(section)}


def test_every_skip_is_a_row_of_the_security_doc():
    rows = _doc_rows()

    assert set(rows) == set(SKIPS)
    assert {name: check for name, (check, _) in rows.items()} == {n: s.check_id for n, s in SKIPS.items()}
    for name, skip in SKIPS.items():
        assert len(skip.reason) > 80, name


@on_variants(*VARIANTS)
def test_every_skip_in_a_template_is_on_a_resource_type_the_doc_names_for_it(variant):
    template = _template(variant.name)
    documented = {(check, kind) for check, kind in _doc_rows().values()}

    skipped = {
        (check, template["Resources"][logical_id]["Type"])
        for logical_id, skips in _skips_by_resource(template).items()
        for check in skips
    }

    assert skipped <= documented


def _failed_checks(directory: Path) -> set[tuple[str, str, str]]:
    """(template file, resource, check id) of each failed check of checkov on the directory: only the
    checks this app skips somewhere (`make checkov` runs them all; these keep the test fast)."""
    checks = ",".join(sorted({skip.check_id for skip in SKIPS.values()}))
    result = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "cloudformation", "--check", checks, *QUIET],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"},
        timeout=240,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    return {
        (Path(failure["file_path"]).name, failure["resource"], failure["check_id"])
        for one in (report if isinstance(report, list) else [report])
        for failure in one["results"]["failed_checks"]
    }


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov's tool environment is not installed (make checkov)")
def test_every_skip_answers_a_real_checkov_finding(tmp_path):
    # Given dev's and prod's templates without their skips (with them, `make checkov` finds nothing;
    # the other variants only drop skips, which the exact test above covers: checkov costs ~2.5 s a
    # template),
    skipped: set[tuple[str, str, str]] = set()
    for name in ("dev", "prod"):
        template = _template(name)
        file = f"{name}-without-skips.template.json"
        for logical_id, skips in _skips_by_resource(template).items():
            resource = template["Resources"][logical_id]
            skipped |= {(file, f"{resource['Type']}.{logical_id}", check) for check in skips}
            del resource["Metadata"]["checkov"]
        (tmp_path / file).write_text(json.dumps(template))

    # checkov fails exactly the skipped checks on exactly those resources: no skip is stale.
    assert _failed_checks(tmp_path) == skipped
    assert len(skipped) == 47 + 48
