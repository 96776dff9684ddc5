"""Generation over WebSocket (Channels): /ws/generate/.

The client sends JSON requests, one at a time; each is a native API request with a
`type` ("generate" or "chat") and an optional `id` that the replies echo:

    {"type": "generate", "id": "1", "prompt": "The capital of France is", "max_tokens": 8}
    {"type": "chat", "id": "2", "messages": [{"role": "user", "content": "Hi"}]}
    {"type": "cancel"}          stops the running generation; answered {"type": "cancelled", "id"}

and receives `{"type": "delta", "id", "text"}` messages, then one
`{"type": "done", "id", "model", "finish_reason", "tokens_generated", "prompt_tokens"}`
(or `{"type": "error", "id", "error": {"code", "message", "field"?}}`). Several requests
run in sequence on one connection; a bad message gets an error message and the
connection stays open; a closed socket cancels its generation at once.

Every log line of a connection carries its id (the handshake's X-Request-ID when it is a
sensible one, else a fresh one); a generation's lines carry `<connection id>:<message
id>` (the message's `id` when it is a short string or number, else the request's number
on the connection), which its `done` or `error` message returns as `request_id`. (Daphne
sends no headers of the application's with a WebSocket handshake.)

API keys, checked as for HTTP: the handshake's `Authorization: Bearer <key>` header, or,
for browsers (whose WebSocket API cannot set headers), the subprotocols
`["llm.v1", "bearer.<key>"]`: the server selects `llm.v1` and never echoes the key. A
connection without a valid key where one is required gets an `unauthorized` error
message, then is closed with code 4401 (HTTP's 401, in the application's range). A key
is checked again at each message: one revoked while its connection is open gets the same
answer at its next message.
"""

import asyncio
import contextlib
import itertools
import logging

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework.exceptions import ValidationError

from access.authentication import authenticate_bearer
from common.errors import InvalidRequest, ServiceError, Unauthorized
from common.log_context import VALID_ID, current_request_id, request_id_from
from generation.api import json_input
from generation.api.errors import describe_exception, error_body
from generation.engine.types import TextDelta
from generation.api.native_format import (
    WIRE_FIELDS,
    ChatRequestSerializer,
    GenerateRequestSerializer,
    to_generation_request,
    usage_fields,
)
from generation.core.observation import refused_before_core
from generation.core.service import prepare_generation
from generation.core.request import GenerationRequest

logger = logging.getLogger(__name__)

REQUEST_SERIALIZERS = {"generate": GenerateRequestSerializer, "chat": ChatRequestSerializer}
CLOSE_UNAUTHORIZED = 4401
SUBPROTOCOL = "llm.v1"
KEY_SUBPROTOCOL_PREFIX = "bearer."


def handshake_authorization(scope) -> str | None:
    """The Authorization header, or one made of a `bearer.<key>` subprotocol (browsers)."""
    header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    if header:
        return header
    for protocol in scope.get("subprotocols", []):
        if protocol.startswith(KEY_SUBPROTOCOL_PREFIX):
            return "Bearer " + protocol.removeprefix(KEY_SUBPROTOCOL_PREFIX)
    return None


def log_id(message_id, number: int) -> str:
    """What a generation's log lines call it on its connection: the client's id when it is a sensible one."""
    if isinstance(message_id, (str, int)) and not isinstance(message_id, bool) and VALID_ID.fullmatch(str(message_id)):
        return str(message_id)
    return str(number)


class GenerationConsumer(AsyncJsonWebsocketConsumer):
    # The generations' endpoint name for metrics and traces: `<prefix>_generate`, `<prefix>_chat`.
    endpoint_prefix = "ws"

    async def connect(self):
        self.running: asyncio.Task | None = None
        self.running_id = None
        self.api_key = None
        self.refused = False
        self.requests = itertools.count(1)
        headers = dict(self.scope["headers"])
        # The consumer's handlers all run in the connection's task: its lines carry this id.
        self.connection_id = request_id_from(headers.get(b"x-request-id", b"").decode("latin-1"))
        current_request_id.set(self.connection_id)
        logger.info("WebSocket %s connected", self.scope["path"], extra={"path": self.scope["path"]})
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in self.scope.get("subprotocols", []) else None)
        try:
            self.api_key = await self.authenticate()
        except Unauthorized as exc:
            await self.refuse_and_close(None, exc)

    async def authenticate(self):
        """The connection's API key (None: anonymous), or Unauthorized."""
        return await sync_to_async(authenticate_bearer)(handshake_authorization(self.scope))

    def generation_request(self, validated_data: dict, *, endpoint: str) -> GenerationRequest:
        return to_generation_request(validated_data, endpoint=endpoint, api_key=self.api_key)

    async def disconnect(self, code):
        logger.info("WebSocket closed (code %s)", code, extra={"close_code": code})
        await self.cancel_running()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if self.refused:
            return
        try:
            content = json_input.loads(text_data) if text_data is not None else None
        except json_input.InvalidJSON as exc:
            return await self.refuse(None, InvalidRequest(str(exc)))
        if not isinstance(content, dict):
            return await self.refuse(None, InvalidRequest("Send a JSON object with a type."))
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        message_type, request_id = content.get("type"), content.get("id")
        if self.api_key is not None:
            try:
                # As HTTP checks every request's: a key revoked since the handshake stops here.
                self.api_key = await self.authenticate()
            except Unauthorized as exc:
                return await self.refuse_and_close(request_id, exc)
        if message_type == "cancel":
            if await self.cancel_running():
                return await self.send_json({"type": "cancelled", "id": self.running_id})
            return await self.refuse(request_id, InvalidRequest("No generation is running on this connection."))
        if message_type not in REQUEST_SERIALIZERS:
            types = ", ".join([*REQUEST_SERIALIZERS, "cancel"])
            return await self.refuse(request_id, InvalidRequest(f"type must be one of {types}.", field="type"))
        if self.running is not None and not self.running.done():
            error = InvalidRequest("A generation is running on this connection: wait for its end, or send cancel.")
            return await self.refuse(request_id, error)
        self.running_id = request_id
        self.running = asyncio.create_task(self.generate(message_type, request_id, content))

    async def generate(self, message_type: str, request_id, content: dict) -> None:
        # This task's own copy of the context: the generation's lines carry its id.
        current_request_id.set(f"{self.connection_id}:{log_id(request_id, next(self.requests))}")
        endpoint = f"{self.endpoint_prefix}_{message_type}"
        try:
            serializer = REQUEST_SERIALIZERS[message_type](data=content)
            try:
                serializer.is_valid(raise_exception=True)
            except ValidationError:
                refused_before_core(endpoint, 400)
                raise
            request = self.generation_request(serializer.validated_data, endpoint=endpoint)
            generation = await prepare_generation(request)
            async for event in generation.events():
                if isinstance(event, TextDelta):
                    await self.send_json({"type": "delta", "id": request_id, "text": event.text})
                else:
                    await self.send_json({"type": "done", "id": request_id, "request_id": current_request_id.get(),
                                          **usage_fields(generation, event)})
        except (ServiceError, ValidationError) as exc:
            await self.send_error(request_id, exc)
        except Exception:  # a crash ends this request with an error message, never the connection
            logger.exception("a WebSocket generation failed")
            await self.send_error(request_id, ServiceError("Internal server error."))

    async def cancel_running(self) -> bool:
        """Cancel the running generation (the engine drops it at its next token); False if none ran."""
        if self.running is None or self.running.done():
            return False
        self.running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.running
        return True

    async def refuse(self, request_id, exc: ServiceError) -> None:
        """A message refused before any generation: counted as the WebSocket's, then answered."""
        refused_before_core(self.endpoint_prefix, exc.status)
        await self.send_error(request_id, exc)

    async def refuse_and_close(self, request_id, exc: Unauthorized) -> None:
        """Answer an `unauthorized` error, then close the connection with 4401."""
        self.refused = True  # frames already on their way are ignored, not served
        await self.refuse(request_id, exc)
        # (Daphne 4.2 does not send a close reason; the error message above carries it.)
        await self.close(code=CLOSE_UNAUTHORIZED, reason=exc.message)

    async def send_error(self, request_id, exc: ServiceError | ValidationError) -> None:
        error = describe_exception(exc, {})
        field = WIRE_FIELDS.get(error.field, error.field)  # the native API's names
        await self.send_json({"type": "error", "id": request_id, "request_id": current_request_id.get(),
                              **error_body(error.code, error.message, field)})
