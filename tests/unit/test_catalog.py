"""The model catalog: the bundled entry, admin validation, the precedence of environment
and admin, and admin changes taking effect on the next request of a running server."""

import pytest

from catalog.chat_templates import GEMMA_CHAT_TEMPLATE, render_chat_template
from catalog.models import ModelEntry, ServiceSettings
from catalog import snapshot
from catalog.engine_settings import memory_goal
from catalog.selectors import engine_config, resolve_model
from common.errors import ModelNotAllowed, ModelNotFound
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = pytest.mark.django_db

BUNDLED = "google/gemma-3-270m"
BUNDLED_CHAT = "HuggingFaceTB/SmolLM2-135M-Instruct"


def add_entry(model_id="local/other", **fields):
    return ModelEntry.objects.create(
        model_id=model_id, display_name=model_id, source="gguf_file", location="/models", filename="m.gguf", **fields
    )


def test_the_migration_creates_the_bundled_entry_as_default():
    entry = ModelEntry.objects.get(model_id=BUNDLED)
    assert entry.enabled and entry.load_at_startup
    assert entry.source == "bundled" and entry.in_situ_quant == "Q8_0"
    assert entry.capabilities == ["generate", "chat"]
    assert ServiceSettings.load().default_model == entry


def test_the_bundled_entries_reuse_a_conversations_history_and_an_admins_choice_is_kept():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("catalog.migrations.0012_prefix_cache_by_default")
    assert {entry.model_id: entry.prefix_cache_n for entry in ModelEntry.objects.filter(source="bundled")} == {
        BUNDLED: 4, BUNDLED_CHAT: 4
    }
    ModelEntry.objects.filter(model_id=BUNDLED).update(prefix_cache_n=8)  # set by an admin
    ModelEntry.objects.filter(model_id=BUNDLED_CHAT).update(prefix_cache_n=0)  # at the old default
    add_entry()
    migration.prefix_cache_on(apps, None)
    assert dict(ModelEntry.objects.values_list("model_id", "prefix_cache_n")) == {
        BUNDLED: 8, BUNDLED_CHAT: 4, "local/other": 0
    }


def test_gemma_template_renders_gemma_turns_with_the_system_message_folded_in():
    prompt = render_chat_template(
        GEMMA_CHAT_TEMPLATE,
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ],
        bos_token="<bos>",
        eos_token="<eos>",
    )
    assert prompt == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


# --- admin validation ------------------------------------------------------------------


@pytest.fixture
def gguf_folder(tmp_path, settings):
    """A folder with a small GGUF that the admin's checks accept, as new.gguf."""
    settings.LLM_MODEL_CACHE_DIR = tmp_path / "cache"
    write_tiny_gguf(tmp_path / "new.gguf")
    return tmp_path


def add_form(admin_client_, folder, **overrides):
    data = {
        "model_id": "local/new",
        "display_name": "New",
        "description": "",
        "size": "1B",
        "capabilities": ["generate", "chat"],
        "source": "gguf_file",
        "location": str(folder),
        "filename": "new.gguf",
        "tokenizer_json": "",
        "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "chat_stop_sequences": "",
        "in_situ_quant": "",
        "max_seqs": "4",
        "enabled": "on",
        **overrides,
    }
    return admin_client_.post("/admin/catalog/modelentry/add/", data)


def test_admin_adds_a_valid_entry(admin_client, gguf_folder):
    response = add_form(admin_client, gguf_folder)
    assert response.status_code == 302, response.content
    assert ModelEntry.objects.get(model_id="local/new").max_seqs == 4


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"chat_template": "{% for m in messages %}{{ m['content'] }"}, "does not parse"),
        ({"chat_template": "{{ messages[0]['content'] | nosuchfilter }}"}, "does not parse"),
        ({"chat_template": "{{ raise_exception('no') }}"}, "no"),
        ({"chat_template": "", "source": "safetensors"}, "needs a chat template"),
        ({"capabilities": ["telepathy"]}, "Select a valid choice. telepathy is not one of the available choices."),
        ({"filename": ""}, "needs the GGUF file name"),
        ({"max_seqs": "0"}, "greater than or equal to 1"),
        ({"kv_cache_memory": "8GB"}, "Use a KV-cache capacity (8GiB, 512MiB, 65536tokens) or the fraction"),
        ({"kv_cache_memory": "1.5"}, "Use a KV-cache capacity"),
        ({"kv_cache_memory": "0"}, "Use a KV-cache capacity"),
        ({"kv_cache_block_size": "64"}, "Select a valid choice. 64 is not one of the available choices."),
    ],
)
def test_admin_rejects_invalid_entries_with_a_clear_message(admin_client, gguf_folder, overrides, message):
    response = add_form(admin_client, gguf_folder, **overrides)
    assert response.status_code == 200  # the form again, with its errors
    assert message in response.content.decode()
    assert not ModelEntry.objects.filter(model_id="local/new").exists()


@pytest.mark.parametrize(
    "memory, block_size, goal", [("8GiB", "16", "8GiB"), ("65536tokens", "", "65536tokens"), ("0.45", "32", 0.45)]
)
def test_the_kv_cache_settings_reach_the_engine_config(admin_client, gguf_folder, memory, block_size, goal):
    response = add_form(admin_client, gguf_folder, kv_cache_memory=memory, kv_cache_block_size=block_size)
    assert response.status_code == 302, response.content
    config = engine_config(ModelEntry.objects.get(model_id="local/new"))
    assert (config.kv_cache_memory, config.kv_cache_block_size) == (memory, int(block_size) if block_size else None)
    assert memory_goal(config.kv_cache_memory) == goal  # what the runner hands mistral.rs


def test_an_entry_without_kv_cache_memory_takes_the_environments(settings):
    entry = add_entry()
    assert engine_config(entry).kv_cache_memory == ""  # the default: the engine sizes it itself
    settings.LLM_ENGINE_KV_CACHE_MEMORY = "16GiB"
    assert engine_config(entry).kv_cache_memory == "16GiB"
    entry.kv_cache_memory = "0.4"
    assert engine_config(entry).kv_cache_memory == "0.4"


def test_the_bundled_entries_leave_the_kv_cache_to_the_engine():
    for entry in ModelEntry.objects.filter(source="bundled"):
        assert (entry.kv_cache_memory, entry.kv_cache_block_size) == ("", None)


def test_admin_needs_a_login(client):
    response = client.get("/admin/catalog/modelentry/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def resolve(**request):
    return resolve_model(snapshot.load(), **request)


# --- precedence of environment and admin --------------------------------------------------------


def test_allowed_models_env_is_a_ceiling_the_admin_cannot_widen(client, settings):
    add_entry("local/other")
    assert {m["id"] for m in client.get("/api/models").json()["models"]} == {BUNDLED, BUNDLED_CHAT, "local/other"}

    settings.LLM_ALLOWED_MODELS = [BUNDLED]
    assert [m["id"] for m in client.get("/api/models").json()["models"]] == [BUNDLED]
    with pytest.raises(ModelNotAllowed):
        resolve(model_id="local/other")
    response = client.post("/api/generate", {"prompt": "x", "model": "local/other"}, content_type="application/json")
    assert response.status_code == 403


def test_unknown_and_disabled_models(client):
    add_entry("local/off", enabled=False)
    with pytest.raises(ModelNotFound):
        resolve(model_id="nobody/nothing")
    with pytest.raises(ModelNotAllowed):
        resolve(model_id="local/off")
    assert "local/off" not in [m["id"] for m in client.get("/api/models").json()["models"]]


def test_the_admin_default_model_wins_over_the_environment(settings):
    other = add_entry("local/other")
    settings.LLM_DEFAULT_MODEL = BUNDLED
    service = ServiceSettings.load()
    service.default_model = other
    service.save()
    assert resolve(model_id=None).model_id == "local/other"

    service.default_model = None
    service.save()
    assert resolve(model_id=None).model_id == BUNDLED


def test_max_tokens_limit_is_the_smaller_of_environment_and_admin(settings):
    settings.LLM_MAX_TOKENS_LIMIT = 4096
    service = ServiceSettings.load()
    service.max_tokens_limit = 100
    service.save()
    assert resolve(model_id=BUNDLED).max_tokens_limit == 100
    service.max_tokens_limit = 10_000
    service.save()
    assert resolve(model_id=BUNDLED).max_tokens_limit == 4096


def test_sampling_defaults_come_from_entry_then_service_then_environment(settings):
    settings.LLM_DEFAULT_TEMPERATURE = 0.7
    settings.LLM_DEFAULT_MAX_TOKENS = 512
    assert resolve(model_id=BUNDLED).defaults.temperature == 0.7

    service = ServiceSettings.load()
    service.default_temperature = 0.3
    service.default_max_tokens = 64
    service.save()
    defaults = resolve(model_id=BUNDLED).defaults
    assert (defaults.temperature, defaults.max_tokens) == (0.3, 64)

    entry = ModelEntry.objects.get(model_id=BUNDLED)
    entry.default_temperature, entry.default_max_tokens = 0.1, 8
    entry.save()
    defaults = resolve(model_id=BUNDLED).defaults
    assert (defaults.temperature, defaults.max_tokens) == (0.1, 8)


# --- the catalog kept in memory (catalog.snapshot) ----------------------------------------------


def test_a_resolution_from_the_catalog_in_memory_reads_no_database(django_assert_num_queries):
    catalog = snapshot.load()
    assert snapshot.cached() is catalog
    with django_assert_num_queries(0):
        assert resolve_model(catalog, model_id=BUNDLED).model_id == BUNDLED


def test_a_servable_model_is_made_once_per_catalog_and_afresh_after_a_change():
    catalog = snapshot.load()
    first = resolve_model(catalog, model_id=BUNDLED)
    assert resolve_model(catalog, model_id="gemma3") is first  # by its id or its alias: made once
    entry = ModelEntry.objects.get(model_id=BUNDLED)
    entry.default_temperature, entry.max_seqs = 0.2, 3
    entry.save()
    changed = resolve(model_id=BUNDLED)  # the next request's
    assert (changed.defaults.temperature, changed.engine.max_seqs) == (0.2, 3)
    assert (first.defaults.temperature, first.engine.max_seqs) != (0.2, 3)
    service = ServiceSettings.load()
    service.max_tokens_limit = 7
    service.save()
    assert resolve(model_id="gemma3").max_tokens_limit == 7


def test_a_save_or_delete_in_this_process_is_seen_by_the_next_resolution():
    snapshot.load()
    entry = add_entry("local/new")
    assert resolve(model_id="local/new").model_id == "local/new"
    entry.enabled = False
    entry.save()
    with pytest.raises(ModelNotAllowed):
        resolve(model_id="local/new")
    entry.delete()
    with pytest.raises(ModelNotFound):
        resolve(model_id="local/new")
    service = ServiceSettings.load()
    service.default_temperature = 1.5
    service.save()
    assert resolve(model_id=BUNDLED).defaults.temperature == 1.5


def test_a_change_without_a_signal_is_seen_when_the_version_is_compared():
    """Another process's change: this process's heartbeat compares the catalog's version."""
    from django.utils import timezone

    snapshot.load()
    ModelEntry.objects.filter(model_id=BUNDLED).update(enabled=False, updated_at=timezone.now())
    assert resolve(model_id=BUNDLED).model_id == BUNDLED  # still the rows in memory
    snapshot.forget_if_changed()
    with pytest.raises(ModelNotAllowed):
        resolve(model_id=BUNDLED)
    catalog = snapshot.load()
    snapshot.forget_if_changed()
    assert snapshot.cached() is catalog  # unchanged since it was read: kept


# --- aliases ------------------------------------------------------------------------------------


def test_the_bundled_models_have_their_aliases():
    assert ModelEntry.objects.get(model_id=BUNDLED).aliases == ["gemma3"]
    assert ModelEntry.objects.get(model_id=BUNDLED_CHAT).aliases == ["smollm2"]


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"aliases": "gemma3"}, "aliases", "'gemma3' is already 'google/gemma-3-270m''s id or alias"),
        ({"aliases": "google/gemma-3-270m"}, "aliases", "no /"),
        ({"aliases": "new\nlocal/new"}, "aliases", "no /"),
        ({"aliases": "new\nnew"}, "aliases", "repeats"),
        ({"model_id": "smollm2"}, "model_id", "is an alias of"),
    ],
)
def test_an_alias_must_be_unique_among_ids_and_aliases(admin_client, gguf_folder, overrides, field, message):
    response = add_form(admin_client, gguf_folder, **overrides)
    assert response.status_code == 200  # the form again, with the error on the field
    assert message in response.context["adminform"].form.errors[field][0]
    assert ModelEntry.objects.count() == 2


def test_an_entry_is_added_and_resolved_by_its_alias(admin_client, gguf_folder, settings):
    response = add_form(admin_client, gguf_folder, aliases="new\nnew-2:latest")
    assert response.status_code == 302, response.content
    assert ModelEntry.objects.get(model_id="local/new").aliases == ["new", "new-2:latest"]
    assert resolve(model_id="new-2:latest").model_id == "local/new"
    settings.LLM_ALLOWED_MODELS = [BUNDLED]  # the environment's list names ids: an alias is resolved first
    assert resolve(model_id="gemma3").model_id == BUNDLED
    with pytest.raises(ModelNotAllowed):
        resolve(model_id="new")
