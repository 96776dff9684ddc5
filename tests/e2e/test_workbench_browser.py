"""The model workbench in headless Chromium, against the real server: an entry with a bad
path shows its error, the file's chat template is copied into the form with one click, and
the landing page leads to the docs; all under the Content-Security-Policy."""

import json

from tests.support.chromium import assert_no_violation, log_in_to_the_admin
from tests.support.server import ADMIN_PASSWORD, ADMIN_USER

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def set_fields(**values) -> str:
    return "".join(f"document.getElementById('id_{name}').value = {json.dumps(value)};" for name, value in values.items())


def test_an_entry_with_a_bad_path_shows_its_error(live_server, page):
    log_in_to_the_admin(page, live_server.url, ADMIN_USER, ADMIN_PASSWORD)
    page.goto(f"{live_server.url}/admin/catalog/modelentry/add/")
    page.follow(
        set_fields(model_id="local/missing", display_name="Missing", source="gguf_file",
                   location="/srv/models/nowhere", filename="missing.gguf")
        + "document.querySelector('input[name=capabilities][value=generate]').checked = true;"
        + "document.querySelector('#modelentry_form input[name=_save]').click()"
    )
    errors = page.evaluate("[...document.querySelectorAll('.errorlist li')].map(e => e.textContent).join(' | ')")
    assert "No such file on this server: /srv/models/nowhere/missing.gguf" in errors
    assert page.evaluate("location.pathname").endswith("/add/")  # not saved
    assert_no_violation(page)


def test_the_files_chat_template_is_copied_into_the_entry_with_one_click(live_server, page):
    log_in_to_the_admin(page, live_server.url, ADMIN_USER, ADMIN_PASSWORD)
    page.goto(f"{live_server.url}/admin/catalog/modelentry/?q={SMOLLM2}")
    page.follow("document.querySelector('#result_list tbody th a').click()")
    metadata = page.evaluate("document.querySelector('.file-metadata table').innerText")
    assert "llama" in metadata and "Q4_1" in metadata and "8192" in metadata
    page.evaluate(set_fields(chat_template="", bos_token="", eos_token=""))
    page.evaluate("document.getElementById('use-file-template').click()")
    from_file = page.evaluate("JSON.parse(document.getElementById('file-template-fields').textContent)")
    assert from_file["chat_template"].startswith("{% for message in messages %}")
    assert page.evaluate("document.getElementById('id_chat_template').value") == from_file["chat_template"]
    assert page.evaluate("document.getElementById('id_bos_token').value") == "<|im_start|>"
    assert page.evaluate("document.getElementById('id_eos_token').value") == "<|im_end|>"
    assert_no_violation(page)


def test_the_landing_page_leads_to_the_api_docs(live_server, page):
    page.goto(f"{live_server.url}/")
    assert page.evaluate("document.querySelector('h1').textContent") == "LLM Inference Service"
    page.follow("[...document.querySelectorAll('a')].find(a => a.textContent === 'API documentation').click()")
    assert page.evaluate("location.pathname") == "/swagger-ui/"
    assert page.wait_for("document.querySelectorAll('.opblock').length") >= 7
    assert_no_violation(page)
