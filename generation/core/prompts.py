"""The prompt the engine gets for a request: a raw continuation after the model's BOS token, or
a chat rendered with its template, the tools in it as the template (or our fallback) writes them."""

from dataclasses import dataclass

from catalog.chat_templates import ChatTemplateError, render_chat_template, takes_tools
from catalog.models import ModelEntry
from catalog.selectors import ServableModel
from common.errors import InvalidRequest
from generation.core.request import GenerationRequest
from generation.core.tool_calls import ToolPlan, messages_for_template, plan
from generation.engine.types import ChatFormat


@dataclass(frozen=True)
class RenderedPrompt:
    """The text the engine gets, and how a chat's tools reached it (None without tools)."""

    text: str
    tool_plan: ToolPlan | None = None


def render_prompt(
    model: ServableModel, request: GenerationRequest, file_format: ChatFormat | None = None
) -> RenderedPrompt:
    """The prompt the engine gets: a raw prompt after the BOS token, or the chat rendered with
    the catalog entry's template, else with the model file's own (`file_format`: None for a file
    without one)."""
    if not request.is_chat:
        return RenderedPrompt(model.bos_token + request.prompt)
    chat_format = _chat_format(model, file_format)
    tool_plan = _tool_plan(request, chat_format)
    try:
        text = render_chat_template(
            chat_format.template, messages_for_template(list(request.messages), tool_plan),
            bos_token=chat_format.bos_token, eos_token=chat_format.eos_token,
            tools=tool_plan.template_tools if tool_plan else None,
        )
    except ChatTemplateError as exc:
        raise InvalidRequest(str(exc), field="messages") from exc
    return RenderedPrompt(text, tool_plan)


def _chat_format(model: ServableModel, file_format: ChatFormat | None) -> ChatFormat:
    if ModelEntry.Capability.CHAT not in model.capabilities:
        raise InvalidRequest(f"Model {model.model_id!r} does not support chat.", field="model")
    if model.chat_template:
        return ChatFormat(model.chat_template, model.bos_token, model.eos_token)
    if file_format is not None:
        return file_format
    raise InvalidRequest(f"Model {model.model_id!r} has no chat template, nor does its file.", field="model")


def _tool_plan(request: GenerationRequest, chat_format: ChatFormat) -> ToolPlan | None:
    """How the request's tools reach the model through its template, or None without tools."""
    if request.tools is None:
        return None
    try:
        template_takes_tools = takes_tools(chat_format.template)
    except ChatTemplateError as exc:
        raise InvalidRequest(str(exc), field="messages") from exc
    return plan(request.tools, template_takes_tools=template_takes_tools)


def needs_the_files_template(model: ServableModel, request: GenerationRequest) -> bool:
    return request.is_chat and not model.chat_template
