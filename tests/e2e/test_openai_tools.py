"""Tool calling in /v1/chat/completions, driven by the clients people use: the `openai` SDK,
LangChain, instructor and the OpenAI Agents SDK, against a real Daphne process with the real
bundled models (neither of whose templates takes tools: the grammar path of generation.core.tool_calls).

Most tests use Gemma 3 270M, a base model: a required or named call is valid whatever the model,
and Gemma prefills the tools' system message faster than SmolLM2, whose calls are better (the
first test)."""

import json
from typing import Annotated

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

CHAT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
BASE_MODEL = "google/gemma-3-270m"
GREEDY = {"temperature": 0}
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}},
    "required": ["city"],
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city.", "parameters": WEATHER_PARAMETERS},
}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The time now."}}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def client(live_server):
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=300) as client:
        yield client


def assert_weather_call(call) -> dict:
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_PARAMETERS)
    return arguments


def test_a_required_call_is_valid_against_the_tools_schema(client):
    completion = client.chat.completions.create(
        model=CHAT_MODEL, messages=QUESTION, tools=[WEATHER, TIME], tool_choice="required",
        parallel_tool_calls=False, max_completion_tokens=40, **GREEDY,
    )
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert assert_weather_call(call) == {"city": "Paris"}


def test_a_named_function_is_called_by_a_base_model(client):
    completion = client.chat.completions.create(
        model=BASE_MODEL, messages=QUESTION, tools=[TIME, WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, max_completion_tokens=40, **GREEDY,
    )
    [call] = completion.choices[0].message.tool_calls
    assert_weather_call(call)
    assert completion.choices[0].finish_reason == "tool_calls"


def test_streamed_calls_are_accumulated_by_the_sdk(client):
    request = {
        "model": BASE_MODEL, "messages": QUESTION, "tools": [WEATHER], "tool_choice": "required",
        "max_completion_tokens": 40, **GREEDY,
    }
    with client.chat.completions.stream(**request) as stream:
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls
    arguments = assert_weather_call(call)
    assert final.choices[0].finish_reason == "tool_calls"
    # The raw chunks: the call opens with its id and name, its arguments follow in fragments.
    chunks = list(client.chat.completions.create(**request, stream=True))
    fragments = [chunk.choices[0].delta.tool_calls[0] for chunk in chunks if chunk.choices[0].delta.tool_calls]
    assert fragments[0].id.startswith("call_") and fragments[0].function.name == "get_weather"
    assert json.loads("".join(fragment.function.arguments for fragment in fragments)) == arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_auto_gives_a_call_or_an_answer_and_a_tool_result_is_answered(client):
    completion = client.chat.completions.create(
        model=BASE_MODEL, messages=QUESTION, tools=[WEATHER], max_completion_tokens=40, **GREEDY,
    )
    message = completion.choices[0].message
    if message.tool_calls:  # the model's choice (docs/api.md, "Tool calling")
        assert_weather_call(message.tool_calls[0])
        assert completion.choices[0].finish_reason == "tool_calls"
    else:
        assert message.content and completion.choices[0].finish_reason in ("stop", "length")
    history = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 24 degrees."},
    ]
    answer = client.chat.completions.create(
        model=CHAT_MODEL, messages=history, tools=[WEATHER], tool_choice="none", max_completion_tokens=24, **GREEDY,
    )
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content


# --- agent frameworks ------------------------------------------------------------------
# Strings bounded (maxLength): a base model may otherwise fill one up to max_tokens.
ShortText = Annotated[str, Field(max_length=20)]


def test_langchain_bind_tools_and_structured_output(live_server):
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        model=BASE_MODEL, base_url=f"{live_server.url}/v1", api_key="unused", temperature=0, max_tokens=40,
        max_retries=0,
    )
    message = chat.bind_tools([WEATHER], tool_choice="required").invoke("What is the weather in Paris?")
    [call] = message.tool_calls
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)

    class City(BaseModel):
        name: ShortText
        country: ShortText

    city = chat.with_structured_output(City, method="function_calling").invoke("Paris is a city in France.")
    assert isinstance(city, City) and city.name


def test_instructor_in_tools_mode(live_server):
    import instructor

    class Weather(BaseModel):
        city: ShortText

    raw = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=300)
    patched = instructor.from_openai(raw, mode=instructor.Mode.TOOLS)
    weather = patched.chat.completions.create(
        model=BASE_MODEL, response_model=Weather, messages=QUESTION, max_tokens=40, max_retries=0, **GREEDY,
    )
    assert isinstance(weather, Weather) and weather.city


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_openai_agents_sdk_calls_the_function_tool(live_server, api):
    """Through both of the SDK's models: chat completions, and the Responses API (its default)."""
    from agents import (Agent, ModelSettings, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner,
                        function_tool, set_tracing_disabled)

    set_tracing_disabled(True)
    asked = []

    @function_tool
    def get_weather(city: ShortText) -> str:
        """The weather in a city."""
        asked.append(city)
        return "Sunny, 24 degrees."

    async with openai.AsyncOpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0) as client:
        # A model object, not a string: the SDK reads the `/` of an id as a provider prefix.
        model_class = OpenAIChatCompletionsModel if api == "chat_completions" else OpenAIResponsesModel
        model = model_class(model=BASE_MODEL, openai_client=client)
        agent = Agent(
            name="weather", instructions="Answer with the tool's help.", tools=[get_weather], model=model,
            model_settings=ModelSettings(tool_choice="required", temperature=0, max_tokens=40),
            # The tool's result is the answer: one generation, not a second turn of a small model.
            tool_use_behavior="stop_on_first_tool",
        )
        result = await Runner.run(agent, "What is the weather in Paris?", max_turns=2)
    assert len(asked) == 1 and asked[0]
    assert result.final_output == "Sunny, 24 degrees."
