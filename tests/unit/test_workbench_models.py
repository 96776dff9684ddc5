"""The model entry in the admin: its files checked at save, their metadata shown, widgets
without JSON, no change recorded when nothing changed; and the landing page at `/`.

Django's test client on a test database (the bundled entries come from the migrations).
"""

import pytest
from django.contrib.admin.models import LogEntry
from huggingface_hub import constants as hub_constants

from catalog.models import ModelEntry
from tests.support.admin_forms import form_fields
from tests.support.tiny_gguf import write_tiny_gguf
from workbench.forms import ModelEntryForm

pytestmark = pytest.mark.django_db

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
ADD_URL = "/admin/catalog/modelentry/add/"


def change_url(model_id: str) -> str:
    return f"/admin/catalog/modelentry/{ModelEntry.objects.get(model_id=model_id).pk}/change/"


def new_entry(**fields) -> dict:
    """The add form's fields for a GGUF file entry, with `fields` changed."""
    data = {
        "model_id": "test/tiny", "display_name": "Tiny", "source": "gguf_file", "location": "/nowhere",
        "filename": "tiny.gguf", "capabilities": ["generate"], "max_seqs": "8", "prefix_cache_n": "0",
        "bos_token": "<s>", "eos_token": "</s>", "enabled": "on",
    }
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


def errors_of(response) -> str:
    assert response.status_code == 200, "the form was saved"
    return " ".join(str(error) for form_errors in response.context["adminform"].form.errors.values()
                    for error in form_errors)


# --- Checks at save ---

def test_a_missing_gguf_file_is_refused_at_save(admin_client, tmp_path):
    response = admin_client.post(ADD_URL, new_entry(location=str(tmp_path)))
    assert f"No such file on this server: {tmp_path / 'tiny.gguf'}" in errors_of(response)
    assert not ModelEntry.objects.filter(model_id="test/tiny").exists()


def test_a_file_that_is_no_gguf_is_refused(admin_client, tmp_path):
    (tmp_path / "tiny.gguf").write_bytes(b"this is not a GGUF file" * 100)
    response = admin_client.post(ADD_URL, new_entry(location=str(tmp_path)))
    assert "tiny.gguf is not a readable GGUF file" in errors_of(response)


def test_a_gguf_of_an_architecture_the_engine_does_not_load_is_refused(admin_client, tmp_path, settings):
    settings.LLM_MODEL_CACHE_DIR = tmp_path / "cache"
    write_tiny_gguf(tmp_path / "tiny.gguf", architecture="bert")
    response = admin_client.post(ADD_URL, new_entry(location=str(tmp_path)))
    assert "architecture 'bert', which the engine does not load" in errors_of(response)


def test_a_gguf_the_engine_loads_is_saved(admin_client, tmp_path, settings):
    settings.LLM_MODEL_CACHE_DIR = tmp_path / "cache"
    write_tiny_gguf(tmp_path / "tiny.gguf", architecture="llama")
    response = admin_client.post(ADD_URL, new_entry(location=str(tmp_path)))
    assert response.status_code == 302, errors_of(response)
    assert ModelEntry.objects.get(model_id="test/tiny").capabilities == ["generate"]


def test_a_chat_entry_needs_a_template_where_its_file_has_none(admin_client, tmp_path, settings):
    settings.LLM_MODEL_CACHE_DIR = tmp_path / "cache"
    write_tiny_gguf(tmp_path / "tiny.gguf")  # no chat template
    chat_entry = new_entry(location=str(tmp_path), capabilities=["generate", "chat"])
    assert "The model's file has no chat template" in errors_of(admin_client.post(ADD_URL, chat_entry))
    template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    saved = admin_client.post(ADD_URL, {**chat_entry, "chat_template": template})
    assert saved.status_code == 302, errors_of(saved)
    # Taking the template away later is refused as well.
    url = change_url("test/tiny")
    fields = {**form_fields(admin_client.get(url).text), "chat_template": "", "_save": "Save"}
    assert "The model's file has no chat template" in errors_of(admin_client.post(url, fields))


def test_a_chat_entry_without_a_template_takes_its_file_s(admin_client, tmp_path, settings):
    settings.LLM_MODEL_CACHE_DIR = tmp_path / "cache"
    write_tiny_gguf(tmp_path / "tiny.gguf", chat_template="{{ messages[0].content }}")
    response = admin_client.post(ADD_URL, new_entry(location=str(tmp_path), capabilities=["generate", "chat"]))
    assert response.status_code == 302, errors_of(response)


def test_a_hugging_face_file_not_in_the_cache_while_offline_is_refused_with_what_to_do(admin_client, settings):
    settings.HF_HUB_OFFLINE = True
    response = admin_client.post(ADD_URL, new_entry(source="hf_gguf", location="some-org/no-such-repo-GGUF"))
    errors = errors_of(response)
    assert "some-org/no-such-repo-GGUF/tiny.gguf is not in the Hugging Face cache, and HF_HUB_OFFLINE is on" in errors
    assert "turn HF_HUB_OFFLINE off" in errors


def test_an_unreachable_hugging_face_is_said(admin_client, settings, monkeypatch, unused_tcp_port):
    settings.HF_HUB_OFFLINE = False
    monkeypatch.setattr(hub_constants, "ENDPOINT", f"http://127.0.0.1:{unused_tcp_port}")
    response = admin_client.post(ADD_URL, new_entry(source="hf_gguf", location="some-org/no-such-repo-GGUF"))
    assert "Hugging Face could not be reached to check some-org/no-such-repo-GGUF/tiny.gguf" in errors_of(response)


def test_a_tokenizer_json_that_does_not_parse_is_refused(admin_client, tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    response = admin_client.post(ADD_URL, new_entry(
        source="safetensors", location=str(tmp_path), filename="", tokenizer_json=str(tmp_path / "tokenizer.json"),
        capabilities=["generate"],
    ))
    assert f"{tmp_path / 'tokenizer.json'} is not a tokenizer.json that parses" in errors_of(response)


def test_a_safetensors_folder_without_config_is_refused(admin_client, tmp_path):
    response = admin_client.post(ADD_URL, new_entry(source="safetensors", location=str(tmp_path), filename=""))
    assert f"No config.json in {tmp_path} on this server." in errors_of(response)


def test_other_settings_of_an_entry_whose_file_is_gone_can_still_be_edited(admin_client, tmp_path, settings):
    settings.LLM_MODEL_CACHE_DIR = tmp_path / "cache"
    write_tiny_gguf(tmp_path / "tiny.gguf")
    assert admin_client.post(ADD_URL, new_entry(location=str(tmp_path))).status_code == 302
    (tmp_path / "tiny.gguf").unlink()
    url = change_url("test/tiny")
    response = admin_client.get(url)
    assert f"No such file on this server: {tmp_path / 'tiny.gguf'}" in response.text  # shown, not hidden
    fields = form_fields(response.text)
    fields.update(enabled="", _save="Save")
    assert admin_client.post(url, {k: v for k, v in fields.items() if v}).status_code == 302
    assert not ModelEntry.objects.get(model_id="test/tiny").enabled


# --- What the file says ---

def test_the_change_page_shows_the_gguf_metadata_and_offers_its_chat_template(admin_client):
    page = admin_client.get(change_url(SMOLLM2)).text
    for shown in ("llama", "Q4_1", "8192", "&lt;|im_start|&gt;", "134,515,008", "98.4 MB"):
        assert shown in page, shown
    assert 'id="use-file-template"' in page
    assert 'id="file-template-fields"' in page
    assert "workbench/model_entry.js" in page


def test_a_gguf_without_a_chat_template_says_so(admin_client):
    page = admin_client.get(change_url("google/gemma-3-270m")).text
    assert "gemma3" in page and "Q4_K_M" in page
    assert "The file has no chat template" in page
    assert 'id="use-file-template"' not in page


# --- Widgets, and no change recorded when nothing changed ---

def test_saving_an_unchanged_entry_records_no_change(admin_client):
    url = change_url(SMOLLM2)
    fields = form_fields(admin_client.get(url).text)
    # A browser sends a textarea's lines with CRLF endings.
    fields["chat_template"] = fields["chat_template"].replace("\n", "\r\n")
    assert fields["capabilities"] == ["generate", "chat"]
    before = ModelEntry.objects.get(model_id=SMOLLM2).chat_template
    assert admin_client.post(url, {**fields, "_save": "Save"}).status_code == 302
    assert ModelEntry.objects.get(model_id=SMOLLM2).chat_template == before
    assert "\r" not in before
    assert LogEntry.objects.latest("action_time").get_change_message() == "No fields changed."


def test_capabilities_are_checkboxes():
    form = ModelEntryForm(instance=ModelEntry.objects.get(model_id=SMOLLM2))
    html = str(form["capabilities"])
    assert html.count('type="checkbox"') == 2
    assert 'value="chat"' in html and "checked" in html


def test_stop_sequences_are_lines_with_escapes():
    entry = ModelEntry.objects.get(model_id=SMOLLM2)
    field = ModelEntryForm.base_fields["chat_stop_sequences"]
    assert field.prepare_value(["<|im_end|>", "\n\nUser:", "a\\b"]) == "<|im_end|>\n\\n\\nUser:\na\\\\b"
    assert field.to_python("<|im_end|>\r\n\\n\\nUser:\r\n\r\na\\\\b\r\n") == ["<|im_end|>", "\n\nUser:", "a\\b"]
    form = ModelEntryForm(instance=entry)
    assert form["chat_stop_sequences"].value() == "<|im_end|>"
    assert "&lt;|im_end|&gt;</textarea>" in str(form["chat_stop_sequences"])


def test_every_field_of_the_model_form_has_help():
    form = ModelEntryForm()
    missing = [name for name, field in form.fields.items() if not field.help_text]
    assert missing == []


# --- The landing page ---

def test_the_landing_page_links_to_the_docs_admin_health_and_metrics(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    for link in ('href="/swagger-ui/"', 'href="/admin/"', 'href="/health/live"', 'href="/health/ready"',
                 'href="/metrics"'):
        assert link in response.text
    assert "Version 1.0.0" in response.text


def test_the_admins_view_site_link_leads_to_the_landing_page(admin_client):
    page = admin_client.get("/admin/").text
    assert '<a href="/">View site</a>' in page
    assert admin_client.get("/").status_code == 200
