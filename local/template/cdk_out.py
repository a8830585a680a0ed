"""Find and load a synthesized CloudFormation template in a cdk.out folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class TemplateError(ValueError):
    """The template cannot be found or read."""


@dataclass(frozen=True)
class SynthesizedStack:
    stack_name: str
    template_path: Path
    template: dict[str, Any]

    @property
    def cdk_out(self) -> Path:
        return self.template_path.parent


def find_stack(cdk_out: Path, stage: str) -> SynthesizedStack:
    """The stack of `stage` in `cdk_out`: the one named `<anything>-<stage>` (or just `<stage>`)."""
    cdk_out = Path(cdk_out)
    stacks = _stacks_in(cdk_out)
    if not stacks:
        raise TemplateError(f"no synthesized stack in {cdk_out}: run `make synth` first")
    wanted = [name for name in stacks if name == stage or name.endswith(f"-{stage}")]
    if len(wanted) != 1:
        raise TemplateError(
            f"stage {stage!r} matches {len(wanted)} of the stacks in {cdk_out} ({', '.join(sorted(stacks))})"
        )
    return load_stack(stacks[wanted[0]], wanted[0])


def load_stack(template_path: Path, stack_name: str | None = None) -> SynthesizedStack:
    template_path = Path(template_path)
    try:
        template = json.loads(template_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise TemplateError(f"cannot read {template_path}: {error}") from error
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{template_path} is not a CloudFormation template (no Resources)")
    name = stack_name or template_path.name.removesuffix(".template.json")
    return SynthesizedStack(stack_name=name, template_path=template_path, template=template)


def _stacks_in(cdk_out: Path) -> dict[str, Path]:
    manifest_path = cdk_out / "manifest.json"
    stacks: dict[str, Path] = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
            artifacts = manifest.get("artifacts", {}) if isinstance(manifest, dict) else None
        except (OSError, ValueError) as error:
            raise TemplateError(f"cannot read {manifest_path}: {error}; run `make synth` again") from None
        if not isinstance(artifacts, dict):
            raise TemplateError(f"{manifest_path} is not a cloud assembly manifest; run `make synth` again")
        for artifact_id, artifact in artifacts.items():
            if artifact.get("type") != "aws:cloudformation:stack":
                continue
            properties = artifact.get("properties", {})
            name = properties.get("stackName") or artifact.get("displayName") or artifact_id
            stacks[name] = cdk_out / properties.get("templateFile", f"{artifact_id}.template.json")
        return stacks
    for path in sorted(cdk_out.glob("*.template.json")):
        stacks[path.name.removesuffix(".template.json")] = path
    return stacks
