// The admin's playground: streams an answer over /ws/playground/ (the admin session
// authenticates it; no API key). The page's data comes from the json_script block
// #playground-config; nothing here is inline (the Content-Security-Policy forbids it).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("playground-config").textContent);
  const $ = (id) => document.getElementById(id);
  const SAMPLING = ["max_tokens", "temperature", "top_p", "top_k", "repetition_penalty"];
  const INTEGERS = new Set(["max_tokens", "top_k"]);

  const modelSelect = $("pg-model");
  let conversation = [];   // the chat so far: [{role, content}], without the system prompt
  let socket = null;
  let running = null;      // {id, mode, answer (element), text, sentAt, firstAt, userTurn}
  let requests = 0;

  // --- models and their defaults --------------------------------------------------------

  for (const model of config.models) {
    const option = document.createElement("option");
    option.value = model.id;
    option.textContent = `${model.name} (${model.id})${model.enabled ? "" : " — disabled"}`;
    modelSelect.appendChild(option);
  }
  if (config.models.some((model) => model.id === config.selected)) {
    modelSelect.value = config.selected;
  }

  function currentModel() {
    return config.models.find((model) => model.id === modelSelect.value);
  }

  function applyModel() {
    const model = currentModel();
    if (!model) return;
    for (const name of SAMPLING) {
      const value = model.defaults[name];
      $(`pg-${name}`).value = value === null || value === undefined ? "" : value;
    }
    $("pg-max_tokens").max = model.max_tokens_limit;
    $("pg-mode-chat").disabled = !model.chat;
    $("pg-mode-generate").disabled = !model.generate;
    if (!model.chat && model.generate) $("pg-mode-generate").checked = true;
    if (!model.generate && model.chat) $("pg-mode-chat").checked = true;
    const notes = [];
    if (!model.enabled) notes.push("disabled: clients cannot use it; staff can try it here");
    notes.push(`max_tokens limit ${model.max_tokens_limit}`);
    $("pg-model-note").textContent = notes.join("; ");
    applyMode();
  }

  function mode() {
    return $("pg-mode-generate").checked ? "generate" : "chat";
  }

  function applyMode() {
    $("pg-chat-fields").hidden = mode() !== "chat";
    $("pg-generate-fields").hidden = mode() !== "generate";
    $("pg-clear").hidden = mode() !== "chat";
  }

  // --- the request ----------------------------------------------------------------------

  function samplingFields() {
    const fields = {};
    for (const name of SAMPLING) {
      const raw = $(`pg-${name}`).value.trim();
      if (raw !== "") fields[name] = INTEGERS.has(name) ? parseInt(raw, 10) : parseFloat(raw);
    }
    const stop = $("pg-stop").value.split("\n").filter((line) => line !== "");
    if (stop.length) fields.stop = stop;
    return fields;
  }

  function addTurn(role, text) {
    const turn = document.createElement("div");
    turn.className = `pg-turn ${role}`;
    const label = document.createElement("span");
    label.className = "pg-role";
    label.textContent = role;
    const body = document.createElement("span");
    body.className = "pg-text";
    body.textContent = text;
    turn.append(label, body);
    $("pg-transcript").appendChild(turn);
    return body;
  }

  function newAnswerElement(body) {
    const previous = $("pg-answer");
    if (previous) previous.removeAttribute("id");
    body.id = "pg-answer";
    return body;
  }

  function buildRequest() {
    const model = currentModel();
    const request = { model: model.id, ...samplingFields() };
    if (mode() === "chat") {
      const text = $("pg-message").value;
      if (!text.trim()) return null;
      const system = $("pg-system").value.trim();
      const userTurn = { role: "user", content: text };
      request.type = "chat";
      request.messages = [...(system ? [{ role: "system", content: system }] : []), ...conversation, userTurn];
      addTurn("user", text);
      $("pg-message").value = "";
      return { request, userTurn, answer: newAnswerElement(addTurn("assistant", "")) };
    }
    const prompt = $("pg-prompt").value;
    if (!prompt) return null;
    request.type = "generate";
    request.prompt = prompt;
    const completion = $("pg-completion");
    completion.replaceChildren();
    const echo = document.createElement("span");
    echo.className = "pg-prompt-echo";
    echo.textContent = prompt;
    const body = document.createElement("span");
    completion.append(echo, body);
    return { request, userTurn: null, answer: newAnswerElement(body) };
  }

  function openSocket() {
    if (socket && socket.readyState === WebSocket.OPEN) return Promise.resolve(socket);
    if (socket) socket.close();  // still connecting, or closing: start afresh
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${config.websocket_path}`);
    socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
    const opened = socket;
    opened.addEventListener("close", (event) => {
      if (socket !== opened) return;
      socket = null;
      if (running) finish(`connection closed (code ${event.code})`, true);
    });
    return new Promise((resolve, reject) => {
      opened.addEventListener("open", () => resolve(opened), { once: true });
      opened.addEventListener("error", () => reject(new Error("could not connect")), { once: true });
    });
  }

  async function send(event) {
    event.preventDefault();
    if (running || !currentModel()) return;
    const built = buildRequest();
    if (!built) return;
    requests += 1;
    const id = `pg-${requests}`;
    running = { id, mode: built.request.type, answer: built.answer, text: "", userTurn: built.userTurn,
                sentAt: null, firstAt: null };
    resetStats();
    setStatus("connecting…");
    setBusy(true);
    try {
      const ws = await openSocket();
      running.sentAt = performance.now();
      setStatus("generating…");
      ws.send(JSON.stringify({ ...built.request, id }));
    } catch (error) {
      finish(error.message, true);
    }
  }

  function onMessage(message) {
    if (!running || (message.id !== undefined && message.id !== null && message.id !== running.id)) {
      // E.g. the answer to a Stop that came after the end; but a refused login is shown.
      if (message.type === "error" && message.error.code === "unauthorized") {
        setStatus(`error: ${message.error.message}`, true);
      }
      return;
    }
    if (message.type === "delta") {
      if (running.firstAt === null) {
        running.firstAt = performance.now();
        $("pg-ttft").textContent = `${Math.round(running.firstAt - running.sentAt)} ms`;
      }
      running.text += message.text;
      running.answer.textContent = running.text;
    } else if (message.type === "done") {
      const now = performance.now();
      $("pg-prompt-tokens").textContent = message.prompt_tokens;
      $("pg-generated-tokens").textContent = message.tokens_generated;
      $("pg-finish").textContent = message.finish_reason;
      if (running.firstAt !== null && message.tokens_generated > 1 && now > running.firstAt) {
        const rate = (message.tokens_generated - 1) / ((now - running.firstAt) / 1000);
        $("pg-rate").textContent = rate.toFixed(1);
      }
      finish(`done (${message.model})`, false);
    } else if (message.type === "cancelled") {
      finish("stopped", false);
    } else if (message.type === "error") {
      finish(`error: ${message.error.message}`, true);
    }
  }

  // Ends the running answer: a chat keeps the turn (even a stopped or partial one) for the next.
  function finish(status, failed) {
    const done = running;
    running = null;
    setBusy(false);
    setStatus(status, failed);
    if (!done) return;
    if (done.mode === "chat" && done.userTurn) {
      if (failed && !done.text) {
        done.answer.textContent = "(no answer)";
        done.answer.classList.add("pg-error");
        conversation.push(done.userTurn);  // kept: the user can resend or go on
      } else {
        conversation.push(done.userTurn, { role: "assistant", content: done.text });
      }
    }
  }

  function stop() {
    if (running && socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "cancel" }));
    }
  }

  function clearConversation() {
    if (running) return;
    conversation = [];
    $("pg-transcript").replaceChildren();
    resetStats();
    setStatus("idle");
  }

  // --- the page's state -----------------------------------------------------------------

  function setBusy(busy) {
    $("pg-send").disabled = busy;
    $("pg-stop-button").disabled = !busy;
    modelSelect.disabled = busy;
  }

  function setStatus(text, failed) {
    const status = $("pg-status");
    status.textContent = text;
    status.classList.toggle("pg-error", !!failed);
  }

  function resetStats() {
    for (const id of ["pg-ttft", "pg-rate", "pg-prompt-tokens", "pg-generated-tokens", "pg-finish"]) {
      $(id).textContent = "–";
    }
  }

  modelSelect.addEventListener("change", applyModel);
  $("pg-mode-chat").addEventListener("change", applyMode);
  $("pg-mode-generate").addEventListener("change", applyMode);
  $("pg-form").addEventListener("submit", send);
  $("pg-stop-button").addEventListener("click", stop);
  $("pg-clear").addEventListener("click", clearConversation);
  applyModel();
})();
