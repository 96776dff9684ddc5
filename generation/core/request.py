"""One generation request, as every API's translation makes it for the core."""

from dataclasses import dataclass

from catalog.sampling import SamplingParams
from generation.core.tool_calls import ToolChoice


@dataclass(frozen=True)
class GenerationRequest:
    """One request, as its API's translation made it (generation.api.native_format,
    generation.api.openai.translation)."""

    model: str | None = None
    prompt: str | None = None  # a raw continuation...
    # ...or a chat, {"role", "content"} each; with tools, an assistant's may hold "tool_calls"
    # ({"id", "name", "arguments"} each) and a "tool" message its "tool_call_id".
    messages: tuple[dict, ...] | None = None
    tools: ToolChoice | None = None  # tools the model may call (generation.core.tool_calls), for a chat
    sampling: SamplingParams = SamplingParams()  # those not set take the model's defaults
    # Which API asked ("generate", "chat_stream", "openai_chat", "ws"...), for metrics and traces.
    endpoint: str = ""
    # The caller's API key (DRF's request.auth), when the request carried one.
    api_key: object | None = None
    # A disabled catalog entry may serve it: only the admin's playground (staff) asks for this.
    include_disabled: bool = False

    @property
    def is_chat(self) -> bool:
        return self.messages is not None
