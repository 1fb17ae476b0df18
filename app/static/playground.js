// The chat playground: plain DOM and fetch against this server's OpenAI routes; no build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "llm-gateway.api-key"; // sessionStorage: the key stays in this browser tab
let history = []; // [{role, content}] of the conversation so far
let controller = null; // AbortController of the reply being streamed

function headers() {
  const key = $("api-key").value.trim();
  const h = { "content-type": "application/json" };
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

function showError(text) {
  $("status").textContent = text;
}

async function errorText(resp) {
  let message = resp.statusText;
  try {
    message = (await resp.json()).error.message;
  } catch (_) {}
  const hint = resp.status === 401 ? " Enter the server's API key above." : "";
  return `${resp.status}: ${message}.${hint}`;
}

async function loadModels() {
  showError("");
  const resp = await fetch("/v1/models", { headers: headers() });
  if (!resp.ok) return showError(await errorText(resp));
  const select = $("model");
  select.replaceChildren(...(await resp.json()).data.map((m) => new Option(m.id, m.id)));
}

function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = role;
  item.textContent = text;
  $("messages").append(item);
  return item;
}

function requestBody() {
  const system = $("system").value.trim();
  const body = {
    model: $("model").value,
    messages: system ? [{ role: "system", content: system }, ...history] : history,
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    max_tokens: Number($("max-tokens").value),
    stream: true,
    stream_options: { include_usage: true },
  };
  const schema = $("schema").value.trim();
  if (schema) {
    let parsed;
    try {
      parsed = JSON.parse(schema);
    } catch (err) {
      throw new Error(`JSON schema box: ${err.message}`);
    }
    body.response_format = { type: "json_schema", json_schema: { name: "playground", schema: parsed } };
  }
  return body;
}

// Yields the JSON payload of every `data:` frame of an SSE body until [DONE].
async function* sseData(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const frames = buffer.split("\n\n");
    buffer = frames.pop();
    for (const frame of frames) {
      const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (data === "[DONE]") return;
      if (data) yield JSON.parse(data);
    }
  }
}

// TTFT from send to the first text; tokens/s over the tokens after the first, as the page saw them arrive.
function statsText(sent, first, end, tokens, note) {
  const parts = [];
  if (first !== null) parts.push(`TTFT ${Math.round(first - sent)} ms`);
  parts.push(`${tokens} tokens`);
  if (first !== null && tokens > 1 && end > first) parts.push(`${((tokens - 1) / ((end - first) / 1000)).toFixed(1)} tok/s`);
  if (note) parts.push(note);
  return parts.join(" · ");
}

async function streamReply(reply) {
  const sent = performance.now();
  let first = null, chunks = 0, usage = null, finish = null, text = "";
  const resp = await fetch("/v1/chat/completions", {
    method: "POST", headers: headers(), body: JSON.stringify(requestBody()), signal: controller.signal,
  });
  if (!resp.ok) throw new Error(await errorText(resp));
  const stats = document.createElement("span");
  stats.className = "stats";
  try {
    for await (const chunk of sseData(resp)) {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      if (choice.finish_reason) finish = choice.finish_reason;
      if (choice.delta && choice.delta.content) {
        first ??= performance.now();
        chunks += 1;
        text += choice.delta.content;
        reply.textContent = text;
      }
    }
  } finally {
    const stopped = controller.signal.aborted;
    const tokens = usage ? usage.completion_tokens : chunks;
    stats.textContent = statsText(sent, first, performance.now(), tokens, stopped ? "stopped" : `finish: ${finish}`);
    reply.append(stats);
    history.push({ role: "assistant", content: text });
  }
}

async function send(event) {
  event.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || controller) return;
  showError("");
  history.push({ role: "user", content: prompt });
  const asked = addMessage("user", prompt);
  $("prompt").value = "";
  const reply = addMessage("assistant", "");
  controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  try {
    await streamReply(reply);
  } catch (err) {
    if (err.name !== "AbortError") showError(err.message);
    if (!reply.textContent) {
      // nothing came back: undo the turn so that the prompt can be sent again
      reply.remove();
      asked.remove();
      history.pop();
      $("prompt").value = prompt;
    }
  } finally {
    controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

function init() {
  $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  $("api-key").addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORE, $("api-key").value.trim());
    loadModels();
  });
  $("ask").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey) return;
    e.preventDefault();
    $("ask").requestSubmit();
  });
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("clear").addEventListener("click", () => {
    history = [];
    $("messages").replaceChildren();
  });
  loadModels().catch((err) => showError(err.message));
}

init();
