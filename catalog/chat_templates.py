"""Chat templates: Jinja, as Hugging Face writes them, rendered in a sandbox.

The service renders the prompt itself; the engine only ever sees the rendered text.
"""

from functools import lru_cache

from jinja2 import TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment


class ChatTemplateError(ValueError):
    """A template that does not parse, or that fails on a conversation."""


def _raise_exception(message: str):
    # Hugging Face templates call raise_exception() to refuse a conversation.
    raise ChatTemplateError(message)


_environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
_environment.globals["raise_exception"] = _raise_exception


@lru_cache(maxsize=64)
def _compile(source: str):
    try:
        return _environment.from_string(source)
    except TemplateError as exc:
        raise ChatTemplateError(f"The chat template does not parse: {exc}") from exc


def render_chat_template(
    source: str,
    messages: list[dict],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
    tools: list[dict] | None = None,
) -> str:
    """`tools`: Hugging Face's variable, OpenAI's tool objects, for a template that takes them."""
    template = _compile(source)
    try:
        return template.render(
            messages=messages,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            **({"tools": tools} if tools is not None else {}),
        )
    except ChatTemplateError:
        raise
    except Exception as exc:  # a template is user code: any failure is its own
        raise ChatTemplateError(f"The chat template failed to render: {exc}") from exc


@lru_cache(maxsize=64)
def takes_tools(source: str) -> bool:
    """Whether the template renders Hugging Face's `tools` variable (a tool-calling model's does)."""
    try:
        return "tools" in meta.find_undeclared_variables(_environment.parse(source))
    except TemplateError as exc:
        raise ChatTemplateError(f"The chat template does not parse: {exc}") from exc


_SAMPLE_CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi!"},
    {"role": "user", "content": "How are you?"},
]


def validate_chat_template(source: str, *, bos_token: str, eos_token: str) -> None:
    """Raise ChatTemplateError unless the template parses and renders a sample conversation."""
    rendered = render_chat_template(source, _SAMPLE_CONVERSATION, bos_token=bos_token, eos_token=eos_token)
    if "How are you?" not in rendered:
        raise ChatTemplateError("The chat template does not render the messages' content.")


# Gemma's turn format: the assistant role is named "model", and a system message is
# folded into the first user turn (Gemma has no system role).
GEMMA_CHAT_TEMPLATE = """\
{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}
{% set system_prefix = messages[0]['content'] + '\\n\\n' %}
{% set turns = messages[1:] %}
{% else %}
{% set system_prefix = '' %}
{% set turns = messages %}
{% endif %}
{% for message in turns %}
{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}
{% set prefix = system_prefix if loop.first and role == 'user' else '' %}
<start_of_turn>{{ role }}
{{ prefix }}{{ message['content'] | trim }}<end_of_turn>
{% endfor %}
{% if add_generation_prompt %}
<start_of_turn>model
{% endif %}"""

# SmolLM2 Instruct's own template, as its GGUF carries it (tokenizer.chat_template): ChatML,
# with a default system turn when the conversation has none.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
