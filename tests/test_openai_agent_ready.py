"""What agent frameworks and the `openai` SDK ask of the OpenAI-compatible API beyond
generation: retrieving a model by its id, called with the official SDK against a real
Daphne process with the real bundled models."""

import openai
import pytest

GEMMA = "google/gemma-3-270m"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def client(live_server):
    with openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


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
