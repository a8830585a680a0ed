"""CloudFormation intrinsic functions, resolved to the local stack's values.

Supported: Ref (resources, parameters, pseudo parameters), Fn::GetAtt, Fn::Join, Fn::Sub,
Fn::Select, Fn::Split, Fn::If / Fn::Equals / Fn::And / Fn::Or / Fn::Not / Condition,
Fn::FindInMap, Fn::Base64, Fn::GetAZs. Fn::ImportValue (another stack's output) cannot be
known locally and raises IntrinsicError, as does anything unknown: a value is never guessed.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the property is removed


class IntrinsicError(ValueError):
    """A template value that cannot be resolved locally."""


@dataclass(frozen=True)
class PseudoParameters:
    region: str = "us-east-1"
    account_id: str = "123456789012"
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"
    stack_name: str = "local"

    def as_refs(self) -> dict[str, Any]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:"
            f"stack/{self.stack_name}/00000000-0000-0000-0000-000000000000",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }


RefLookup = Callable[[str], Any]
AttLookup = Callable[[str, str], Any]

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Resolves intrinsic functions against pseudo parameters, parameters and resource values.

    `ref(logical_id)` and `get_att(logical_id, attribute)` return a resource's physical value
    and raise KeyError when unknown.
    """

    def __init__(
        self,
        pseudo: PseudoParameters,
        ref: RefLookup,
        get_att: AttLookup,
        *,
        parameters: Mapping[str, Any] | None = None,
        conditions: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
    ) -> None:
        self._pseudo = pseudo.as_refs()
        self._region = pseudo.region
        self._ref = ref
        self._get_att = get_att
        self._parameters = dict(parameters or {})
        self._conditions = dict(conditions or {})
        self._mappings = dict(mappings or {})
        self._condition_values: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._resolve_ref(argument)
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                handler = _FUNCTIONS.get(key)
                if handler is None:
                    raise IntrinsicError(f"{key} is not supported by the local stack")
                return handler(self, argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self._conditions:
                raise IntrinsicError(f"unknown condition {name!r}")
            self._condition_values[name] = bool(self.resolve(self._conditions[name]))
        return self._condition_values[name]

    def _resolve_ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise IntrinsicError(f"Ref needs a name, got {name!r}")
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self._parameters[name]
        try:
            return self._ref(name)
        except KeyError:
            raise IntrinsicError(f"Ref to unknown resource or parameter {name!r}") from None

    def _get_attribute(self, logical_id: str, attribute: str) -> Any:
        try:
            return self._get_att(logical_id, attribute)
        except KeyError:
            raise IntrinsicError(f"Fn::GetAtt {logical_id}.{attribute} is not known locally") from None

    # --- functions -------------------------------------------------------------------------

    def _fn_get_att(self, argument: Any) -> Any:
        if isinstance(argument, str):
            logical_id, _, attribute = argument.partition(".")
        elif isinstance(argument, list) and len(argument) == 2:
            logical_id, attribute = argument[0], self.resolve(argument[1])
        else:
            raise IntrinsicError(f"malformed Fn::GetAtt {argument!r}")
        return self._get_attribute(logical_id, attribute)

    def _pair(self, argument: Any, name: str) -> tuple[Any, Any]:
        """The two operands of `name`, resolved."""
        if not (isinstance(argument, list) and len(argument) == 2):
            raise IntrinsicError(f"malformed {name} {argument!r}")
        return self.resolve(argument[0]), self.resolve(argument[1])

    def _fn_join(self, argument: Any) -> str:
        delimiter, parts = self._pair(argument, "Fn::Join")
        if not isinstance(parts, list):
            raise IntrinsicError(f"Fn::Join needs a list, got {parts!r}")
        return str(delimiter).join(_scalar(part, "Fn::Join") for part in parts)

    def _fn_sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            template, variables = argument, {}
        elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str):
            template = argument[0]
            variables = {k: self.resolve(v) for k, v in dict(argument[1]).items()}
        else:
            raise IntrinsicError(f"malformed Fn::Sub {argument!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _scalar(variables[name], "Fn::Sub")
            if "." in name and not name.startswith("AWS::"):
                logical_id, _, attribute = name.partition(".")
                return _scalar(self._get_attribute(logical_id, attribute), "Fn::Sub")
            return _scalar(self._resolve_ref(name), "Fn::Sub")

        return _SUB_VARIABLE.sub(substitute, template)

    def _fn_select(self, argument: Any) -> Any:
        index, items = self._pair(argument, "Fn::Select")
        index = int(index)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise IntrinsicError(f"Fn::Select index {index} out of range of {items!r}")
        return items[index]

    def _fn_split(self, argument: Any) -> list[str]:
        delimiter, source = self._pair(argument, "Fn::Split")
        return str(source).split(str(delimiter))

    def _fn_if(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise IntrinsicError(f"malformed Fn::If {argument!r}")
        return self.resolve(argument[1] if self.condition(argument[0]) else argument[2])

    def _fn_equals(self, argument: Any) -> bool:
        left, right = (self.resolve(item) for item in argument)
        return bool(left == right)

    def _fn_and(self, argument: Any) -> bool:
        return all(self._truth(item) for item in argument)

    def _fn_or(self, argument: Any) -> bool:
        return any(self._truth(item) for item in argument)

    def _fn_not(self, argument: Any) -> bool:
        return not self._truth(argument[0])

    def _truth(self, item: Any) -> bool:
        return bool(self.resolve(item))

    def _fn_find_in_map(self, argument: Any) -> Any:
        name, top, second = (self.resolve(item) for item in argument[:3])
        try:
            return self._mappings[name][top][second]
        except KeyError:
            raise IntrinsicError(f"Fn::FindInMap {name}.{top}.{second} not found") from None

    def _fn_base64(self, argument: Any) -> str:
        return base64.b64encode(str(self.resolve(argument)).encode()).decode()

    def _fn_get_azs(self, argument: Any) -> list[str]:
        region = self.resolve(argument) or self._region
        return [f"{region}{zone}" for zone in "abc"]

    def _fn_to_json_string(self, argument: Any) -> str:
        return json.dumps(self.resolve(argument), separators=(",", ":"))


_NAMES = ("GetAtt", "Join", "Sub", "Select", "Split", "If", "Equals", "And", "Or", "Not", "FindInMap")
# Fn::GetAtt -> Resolver._fn_get_att, Fn::GetAZs -> Resolver._fn_get_azs, ...
_FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
    f"Fn::{name}": getattr(Resolver, "_fn_" + re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower())
    for name in (*_NAMES, "Base64", "GetAZs", "ToJsonString")
}


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    raise IntrinsicError(f"{where} needs a string, got {value!r}")


def referenced_logical_ids(value: Any) -> Iterator[str]:
    """Every logical id a value points at through Ref, Fn::GetAtt or Fn::Sub, in order."""
    if isinstance(value, list):
        for item in value:
            yield from referenced_logical_ids(item)
    elif isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in ("Ref", "Fn::GetAtt", "Fn::Sub"):
            yield from _function_references(*next(iter(value.items())))
            return
        for item in value.values():
            yield from referenced_logical_ids(item)


def _function_references(key: str, argument: Any) -> Iterator[str]:
    if key == "Ref":
        if isinstance(argument, str) and not argument.startswith("AWS::"):
            yield argument
    elif key == "Fn::GetAtt":
        if isinstance(argument, str):
            yield argument.split(".", 1)[0]
        elif isinstance(argument, list) and argument:
            yield str(argument[0])
    else:  # Fn::Sub
        template = argument if isinstance(argument, str) else argument[0]
        for name in _SUB_VARIABLE.findall(str(template)):
            if not name.startswith(("!", "AWS::")):
                yield name.split(".", 1)[0]
        if isinstance(argument, list) and len(argument) == 2:
            yield from referenced_logical_ids(argument[1])
