"""Ref and Fn::GetAtt answered with the local stack's values (`LocalValues`).

Physical names are deterministic (`<stack>-<LogicalId>`), so two runs of the same template
name things the same way. Values only known once moto runs (queue URLs, stream ARNs) are given.
"""

from __future__ import annotations

import hashlib
import string
from typing import Any

from local.template.intrinsics import IntrinsicError
from local.template.model import (
    API_TYPE,
    AUTHORIZER_TYPE,
    DEFAULT_ISSUER_BASE,
    INTEGRATION_TYPE,
    LAYER_VERSION_TYPE,
    ROUTE_RESPONSE_TYPE,
    ROUTE_TYPE,
    STAGE_TYPE,
    USER_POOL_CLIENT_TYPE,
    USER_POOL_TYPE,
    StackModel,
)


def physical_name(stack_name: str, logical_id: str, max_length: int, suffix: str = "") -> str:
    name = f"{stack_name}-{logical_id}"
    return name[: max_length - len(suffix)] + suffix


def api_id_for(stack_name: str, logical_id: str) -> str:
    """A 10-character id like API Gateway's, stable for a stack and logical id."""
    return hashlib.sha256(f"{stack_name}/{logical_id}".encode()).hexdigest()[:10]


def _stable_text(seed: str, alphabet: str, length: int) -> str:
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    characters = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        characters.append(alphabet[index])
    return "".join(characters)


class LocalValues:
    """Ref and Fn::GetAtt answers for the local stack's resources."""

    def __init__(
        self,
        model: StackModel,
        moto_endpoint: str,
        stream_arns: dict[str, str] | None = None,
        *,
        issuer_base: str = DEFAULT_ISSUER_BASE,
    ) -> None:
        self._model = model
        self._endpoint = moto_endpoint.rstrip("/")
        self._stream_arns = dict(stream_arns or {})
        self._pseudo = model.pseudo
        self.issuer_base = issuer_base.rstrip("/")

    def issuer_url(self, pool_logical_id: str) -> str:
        """The local issuer standing in for a user pool (its ProviderURL)."""
        return f"{self.issuer_base}/{self.ref(pool_logical_id)}"

    def _arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        pseudo = self._pseudo
        return (
            f"arn:{pseudo.partition}:{service}:{pseudo.region if region else ''}:"
            f"{pseudo.account_id if account else ''}:{resource}"
        )

    def ref(self, logical_id: str) -> Any:  # noqa: PLR0911 - one answer per resource type
        model = self._model
        if logical_id in model.tables:
            return model.tables[logical_id].name
        if logical_id in model.queues:
            return self.queue_url(logical_id)
        if logical_id in model.functions:
            return model.functions[logical_id].name
        resource = model.resources.get(logical_id)
        if resource is None:
            raise KeyError(logical_id)
        resource_type = resource.get("Type", "")
        properties = resource.get("Properties", {})
        if resource_type == API_TYPE:
            return api_id_for(model.stack_name, logical_id)
        if resource_type == STAGE_TYPE:
            return properties.get("StageName", "$default")
        if resource_type in (INTEGRATION_TYPE, ROUTE_TYPE, ROUTE_RESPONSE_TYPE, AUTHORIZER_TYPE):
            return api_id_for(model.stack_name, logical_id)[:7]
        seed = f"{model.stack_name}/{logical_id}"
        if resource_type == USER_POOL_TYPE:  # `<region>_<9 letters/digits>` like Cognito's
            return f"{self._pseudo.region}_{_stable_text(seed, string.ascii_letters + string.digits, 9)}"
        if resource_type == USER_POOL_CLIENT_TYPE:  # 26 lower-case letters and digits like Cognito's
            return _stable_text(seed, string.ascii_lowercase + string.digits, 26)
        if resource_type == LAYER_VERSION_TYPE:
            name = model.layers[logical_id].name if logical_id in model.layers else logical_id
            return self._arn("lambda", f"layer:{name}:1")
        if resource_type == "AWS::Logs::LogGroup":
            return properties.get("LogGroupName") or physical_name(model.stack_name, logical_id, 512)
        return properties.get("Name") or physical_name(model.stack_name, logical_id, 64)

    def get_att(self, logical_id: str, attribute: str) -> Any:  # noqa: PLR0911, PLR0912 - as ref()
        model = self._model
        if logical_id in model.tables:
            table = model.tables[logical_id]
            arn = self._arn("dynamodb", f"table/{table.name}")
            if attribute == "Arn":
                return arn
            if attribute in ("StreamArn", "LatestStreamArn"):
                return self._stream_arns.get(logical_id, f"{arn}/stream/local")
            if attribute == "TableId":
                return api_id_for(model.stack_name, logical_id)
        if logical_id in model.queues:
            queue = model.queues[logical_id]
            if attribute == "Arn":
                return self.queue_arn(logical_id)
            if attribute == "QueueName":
                return queue.name
            if attribute == "QueueUrl":
                return self.queue_url(logical_id)
        if logical_id in model.functions and attribute == "Arn":
            return self._arn("lambda", f"function:{model.functions[logical_id].name}")
        resource = model.resources.get(logical_id)
        if resource is None:
            raise KeyError(logical_id)
        resource_type = resource.get("Type", "")
        if resource_type == API_TYPE and attribute == "ApiEndpoint":
            protocol = resource.get("Properties", {}).get("ProtocolType")
            scheme = "wss" if protocol == "WEBSOCKET" else "https"
            api_id = api_id_for(model.stack_name, logical_id)
            return f"{scheme}://{api_id}.execute-api.{self._pseudo.region}.{self._pseudo.url_suffix}"
        if resource_type == API_TYPE and attribute == "ApiId":
            return api_id_for(model.stack_name, logical_id)
        if resource_type == USER_POOL_TYPE:
            pool_id = self.ref(logical_id)
            if attribute == "ProviderURL":
                return self.issuer_url(logical_id)
            if attribute == "ProviderName":
                return self.issuer_url(logical_id).split("://", 1)[-1]
            if attribute == "UserPoolId":
                return pool_id
            if attribute == "Arn":
                return self._arn("cognito-idp", f"userpool/{pool_id}")
        if resource_type == USER_POOL_CLIENT_TYPE and attribute == "ClientId":
            return self.ref(logical_id)
        if resource_type == USER_POOL_CLIENT_TYPE and attribute == "Name":
            return resource.get("Properties", {}).get("ClientName") or physical_name(
                model.stack_name, logical_id, 128
            )
        if resource_type == LAYER_VERSION_TYPE and attribute == "LayerVersionArn":
            return self.ref(logical_id)
        if resource_type == "AWS::IAM::Role" and attribute == "Arn":
            return self._arn("iam", f"role/{self.ref(logical_id)}", region=False)
        if resource_type == "AWS::Logs::LogGroup" and attribute == "Arn":
            return self._arn("logs", f"log-group:{self.ref(logical_id)}:*")
        if attribute == "Arn":
            service = resource_type.split("::")[1].lower() if "::" in resource_type else "local"
            return self._arn(service, str(self.ref(logical_id)))
        raise KeyError(f"{logical_id}.{attribute}")

    def queue_url(self, logical_id: str) -> str:
        return f"{self._endpoint}/{self._pseudo.account_id}/{self._model.queues[logical_id].name}"

    def queue_arn(self, logical_id: str) -> str:
        return self._arn("sqs", self._model.queues[logical_id].name)


def check_resolvable(model: StackModel, values: LocalValues) -> None:
    """Resolve every function environment once, so a bad value is reported at start."""
    resolver = model.resolver(values)
    for spec in model.functions.values():
        for key, value in spec.environment.items():
            try:
                resolver.resolve(value)
            except IntrinsicError as error:
                model.unsupported(f"function {spec.display_name} env {key}", str(error))
