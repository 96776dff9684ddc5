// The model entry's change form: copies the GGUF's own chat template and special tokens
// (read by the server into #file-template-fields) into the form's fields.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("use-file-template");
  const data = document.getElementById("file-template-fields");
  if (!button || !data) {
    return;
  }
  button.addEventListener("click", () => {
    const fields = JSON.parse(data.textContent);
    for (const name of ["chat_template", "bos_token", "eos_token"]) {
      const input = document.getElementById(`id_${name}`);
      if (input) {
        input.value = fields[name];
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }
    button.textContent = "Copied: save to keep it";
  });
});
