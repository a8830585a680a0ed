"""WsDefaultFunction: WebSocket $default route, two-way: the returned body goes back to the
client as a frame. Ping gets pong; resume replays the task changes the connection missed
(taskflow.services.resume); anything else an error frame (never a closed connection).

On `auth: jwt` stages a connection ends with its token: any frame from a connection whose token
has expired (the expiry the $connect authorizer put in the connection's context) is answered with
`{"type": "expired"}` and the connection is closed (@connections DELETE)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.auth_contract import AUTH_JWT, authorized_owner, authorized_token_expiry
from taskflow.clients.connections_client import close_with
from taskflow.deadline import answer_before_timeout, seconds_left
from taskflow.domain.client_frames import MAX_CLIENT_FRAME_BYTES, error, expired, request_of, too_large
from taskflow.errors import DependencyUnavailableError
from taskflow.lazy import Lazy
from taskflow.observability import logger
from taskflow.settings import WsDefaultSettings, load_settings

if TYPE_CHECKING:
    from taskflow.clients.connections_client import FramePoster
    from taskflow.services.resume import ResumeService

_NOT_BASE64 = b"\xff"  # not UTF-8, so answered with an error frame


def _build_resume() -> ResumeService:
    # Imported here: a ping needs none of it (boto3, the repository), only a resume does.
    from taskflow.clients.connections_client import ConnectionsClient  # noqa: PLC0415
    from taskflow.repositories.task_repository import TaskRepository  # noqa: PLC0415
    from taskflow.services.resume import ResumeLimits, ResumeService  # noqa: PLC0415

    settings = load_settings(WsDefaultSettings)
    return ResumeService(
        TaskRepository(settings.task_table_name, list_shards=settings.task_list_shards),
        ConnectionsClient(settings.websocket_callback_url),
        ResumeLimits(max_changes=settings.resume_max_changes, window_seconds=settings.resume_window_seconds),
    )


resume: Lazy[ResumeService] = Lazy(_build_resume)


def _build_poster() -> FramePoster:
    from taskflow.clients.connections_client import ConnectionsClient  # noqa: PLC0415

    return ConnectionsClient(load_settings(WsDefaultSettings).websocket_callback_url)


poster: Lazy[FramePoster] = Lazy(_build_poster)  # only to close a connection whose token expired


def _expired_token(request_context: dict[str, Any]) -> int | None:
    """When the connection's token expired, if it has, else None. Only connections opened through
    the $connect authorizer (stages with `auth: jwt`) carry an expiry; a resume on such a stage
    without one is refused anyway (no owner either)."""
    expires_at = authorized_token_expiry(request_context)
    return expires_at if expires_at is not None and expires_at <= time.time() else None


def _close_expired(connection_id: str, expires_at: int) -> None:
    """Tell the client why, then close the connection ($disconnect removes its row)."""
    try:
        close_with(poster.get(), connection_id, json.dumps(expired(expires_at)).encode())
    except Exception as failure:  # the notifier closes it at its owner's next change, or the TTL
        logger.warning("could not close an expired connection", extra={"error": repr(failure)})
        return
    logger.info("connection closed: its token expired", extra={"connection_id": connection_id})


def _request(event: dict[str, Any]) -> dict[str, Any]:
    """The client's request, or the error frame answering it."""
    body = event.get("body") or ""
    encoded = bool(event.get("isBase64Encoded"))
    # Size first, before decoding anything (a text frame has at least as many bytes as characters).
    if len(body) > (MAX_CLIENT_FRAME_BYTES * 4 // 3 + 4 if encoded else MAX_CLIENT_FRAME_BYTES):
        return too_large(len(body) * 3 // 4 if encoded else len(body.encode("utf-8", errors="replace")))
    if encoded:
        try:
            return request_of(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            return request_of(_NOT_BASE64)
    return request_of(body.encode("utf-8", errors="surrogatepass"))


def _reply(event: dict[str, Any], connection_id: str | None, context: LambdaContext) -> dict[str, Any] | None:
    request = _request(event)
    action = request.get("action")
    if action == "ping":
        return {"type": "pong"}
    if action != "resume":
        return request  # an error frame
    owner = None
    if load_settings(WsDefaultSettings).auth_mode == AUTH_JWT:
        owner = authorized_owner(event.get("requestContext") or {})
        if owner is None:  # fail closed: the route runs on a connection $connect did not authorize
            logger.error("resume refused: no owner from the $connect authorizer")
            return error("this connection carries no verified caller")
    try:
        # The replay stops posting before the function's timeout (then an error frame: ask again); a
        # read that hangs is interrupted just before it (taskflow.deadline: DependencyUnavailableError).
        with answer_before_timeout(context):
            return resume.get().resume(
                str(connection_id),
                request.get("since"),
                owner=owner,
                time_left=seconds_left(context),
            )
    except DependencyUnavailableError as unavailable:
        logger.warning("resume failed: a dependency is down", extra={"error": str(unavailable)})
        return error(
            "tasks cannot be read right now; send the same resume again in a few seconds", retry=True
        )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_context = event.get("requestContext") or {}
    connection_id = request_context.get("connectionId")
    expired_at = _expired_token(request_context)
    if expired_at is not None:
        _close_expired(str(connection_id), expired_at)
        return {"statusCode": 200}
    reply = _reply(event, connection_id, context)
    if reply is None:  # the connection went while a resume posted to it: nobody to answer
        return {"statusCode": 200}
    if reply["type"] == "error":
        logger.info(
            "client frame rejected", extra={"connection_id": connection_id, "reason": reply["message"]}
        )
    return {"statusCode": 200, "body": json.dumps(reply)}
