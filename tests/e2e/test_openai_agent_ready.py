"""What agent frameworks and the `openai` SDK ask of the OpenAI-compatible API: retrieving a
model by its id, short aliases for ids with a "/", several prompts in one completion request
(LangChain's batches), structured output that ends, called with the official SDKs against a real Daphne process with the
real bundled models."""

import json

import httpx
import openai
import pytest
from pydantic import BaseModel
from agents import Agent, ModelSettings, MultiProvider, RunConfig, Runner, UserError
from langchain_openai import OpenAI as LangChainOpenAI
from websockets.sync.client import connect

GEMMA = "google/gemma-3-270m"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def client(live_server):
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def http(live_server):
    with httpx.Client(base_url=live_server.url, timeout=120) as http:
        yield http


@pytest.mark.parametrize("model_id", [GEMMA, SMOLLM2])
def test_a_model_is_retrieved_by_its_id_with_a_slash(client, model_id):
    model = client.models.retrieve(model_id)
    listed = {listed.id: listed for listed in client.models.list()}
    assert model.id == model_id and model.object == "model"
    assert model == listed[model_id]


def test_an_unknown_or_disabled_model_is_not_found(live_server, client):
    live_server.change_catalog(
        "from catalog.models import ModelEntry; ModelEntry.objects.create(model_id='local/off-retrieve', "
        "display_name='Off', source='gguf_file', location='/nowhere', filename='x.gguf', enabled=False)",
    )
    for model_id in ("nobody/nothing", "local/off-retrieve", "google"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.models.retrieve(model_id)
        assert raised.value.code == "model_not_found"
        assert raised.value.param == "model"
        assert raised.value.type == "invalid_request_error"


# --- aliases --------------------------------------------------------------------------------------


def test_the_lists_give_each_model_once_with_its_aliases(client, http):
    assert {model.id: model.aliases for model in client.models.list()} == {GEMMA: ["gemma3"], SMOLLM2: ["smollm2"]}
    native = {model["id"]: model["aliases"] for model in http.get("/api/models").json()["models"]}
    assert native == {GEMMA: ["gemma3"], SMOLLM2: ["smollm2"]}
    model = client.models.retrieve("smollm2")
    assert model.id == SMOLLM2 and model.aliases == ["smollm2"]


def test_an_alias_is_served_as_its_model_and_answered_with_the_id(client):
    chat = {"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 6, "temperature": 0}
    by_alias = client.chat.completions.create(model="smollm2", **chat)
    assert by_alias.model == SMOLLM2
    assert by_alias.choices[0].message.content == client.chat.completions.create(model=SMOLLM2, **chat).choices[
        0
    ].message.content
    chunks = list(client.completions.create(model="gemma3", prompt="Hello", max_tokens=3, stream=True))
    assert {chunk.model for chunk in chunks} == {GEMMA}


def test_an_alias_on_the_native_api_the_tokenizer_and_the_websocket(live_server, http):
    generated = http.post("/api/generate", json={"model": "gemma3", "prompt": "Hi", "max_tokens": 2}).json()
    assert generated["model"] == GEMMA
    tokenized = http.post("/api/tokenize", json={"model": "smollm2", "text": "Hello"}).json()
    assert tokenized["model"] == SMOLLM2
    with connect(live_server.url.replace("http", "ws", 1) + "/ws/generate/", open_timeout=30) as socket:
        socket.send(json.dumps({"type": "chat", "id": "a", "model": "smollm2", "max_tokens": 2,
                                "messages": [{"role": "user", "content": "Hi"}]}))
        while (reply := json.loads(socket.recv(timeout=120)))["type"] == "delta":
            pass
    assert reply["type"] == "done" and reply["model"] == SMOLLM2


async def test_an_agent_of_the_openai_agents_sdk_runs_on_an_alias(live_server):
    client = openai.AsyncOpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=120)
    config = RunConfig(
        model_provider=MultiProvider(openai_client=client, openai_use_responses=False),
        model_settings=ModelSettings(max_tokens=16, temperature=0),
        tracing_disabled=True,
    )
    with pytest.raises(UserError, match="Unknown prefix"):  # why the aliases: the SDK reads "x/" as a provider
        await Runner.run(Agent(name="helper", model=SMOLLM2), "Hi", run_config=config)
    result = await Runner.run(Agent(name="helper", model="smollm2"), "Say hello.", run_config=config, max_turns=1)
    assert isinstance(result.final_output, str) and result.final_output


# --- several prompts in one completion request ----------------------------------------------------

PROMPTS = ["The capital of France is", "def fib(n):\n", "Once upon a time"]
GREEDY = {"max_tokens": 5, "temperature": 0}


@pytest.fixture(scope="module")
def one_by_one(client):
    return [client.completions.create(model=GEMMA, prompt=prompt, **GREEDY) for prompt in PROMPTS]


def test_a_list_of_prompts_gets_a_choice_each_in_order(client, one_by_one):
    completion = client.completions.create(model=GEMMA, prompt=PROMPTS, n=2, **GREEDY)
    assert [choice.index for choice in completion.choices] == list(range(6))
    assert [choice.text for choice in completion.choices] == [
        single.choices[0].text for single in one_by_one for _ in range(2)
    ]
    assert completion.usage.prompt_tokens == sum(single.usage.prompt_tokens for single in one_by_one)
    assert completion.usage.completion_tokens == 2 * sum(single.usage.completion_tokens for single in one_by_one)


def test_a_list_of_prompts_streamed_each_chunk_with_its_choice_index(client, one_by_one):
    stream = client.completions.create(
        model=GEMMA, prompt=PROMPTS, stream=True, stream_options={"include_usage": True}, **GREEDY
    )
    texts, finished = ["", "", ""], []
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.text
            if choice.finish_reason:
                finished.append(choice.index)
        usage = chunk.usage
    assert texts == [single.choices[0].text for single in one_by_one]
    assert finished == [0, 1, 2]
    assert usage.total_tokens == sum(single.usage.total_tokens for single in one_by_one)


def test_langchains_batch_is_one_request_of_several_prompts(live_server, one_by_one):
    llm = LangChainOpenAI(base_url=f"{live_server.url}/v1", api_key="unused", model="gemma3", max_retries=0, **GREEDY)
    result = llm.generate(PROMPTS)
    assert [generations[0].text for generations in result.generations] == [
        single.choices[0].text for single in one_by_one
    ]
    assert llm.batch(PROMPTS[:2]) == [single.choices[0].text for single in one_by_one[:2]]


def test_too_many_prompts_or_token_ids_are_a_clear_bad_request(client):
    for prompt, message in [(["Hi"] * 17, "17 prompts is over this service's limit of 16"), ([[1, 2]], "token ids")]:
        with pytest.raises(openai.BadRequestError) as raised:
            client.completions.create(model=GEMMA, prompt=prompt, max_tokens=1)
        assert raised.value.param == "prompt" and message in raised.value.message


# --- structured output that ends ------------------------------------------------------------------


class City(BaseModel):
    name: str
    country: str
    population_millions: float


@pytest.mark.parametrize("model", [GEMMA, SMOLLM2])
def test_parse_with_a_pydantic_model_with_a_float_ends_and_parses(client, model):
    completion = client.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Describe the largest city of India as JSON."}],
        response_format=City,
        max_completion_tokens=200,
        temperature=0,
    )
    [choice] = completion.choices
    assert choice.finish_reason == "stop", choice.message.content
    assert isinstance(choice.message.parsed, City)


def test_the_schema_describes_retrieval_aliases_and_prompt_lists(http):
    schema = http.get("/api/schema/", headers={"accept": "application/json"}).json()
    retrieve = schema["paths"]["/v1/models/{model}"]["get"]
    assert {"200", "404"} <= set(retrieve["responses"])
    assert retrieve["parameters"][0]["name"] == "model" and "aliases" in retrieve["parameters"][0]["description"]
    components = schema["components"]["schemas"]
    assert "aliases" in components["OpenAIModel"]["properties"] and "aliases" in components["ModelSummary"]["properties"]
    assert components["CompletionRequest"]["properties"]["prompt"]["oneOf"][1]["maxItems"] == 16
