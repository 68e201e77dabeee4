// The chat page: the conversation lives in this tab's memory only (no storage, no cookies) and is
// sent whole with each message to this server's /v1/chat/completions, streamed. Safety parts come
// marked (`mh_lightning_part`): the crisis reply is shown first in its own box; the disclaimer is
// already at the top of the page.
"use strict";
const messages = [];  // {role, content}: the history sent back to the server
let apiKey = null;    // asked for only when the server is protected (--api_key); kept in memory
let busy = false;
const list = document.getElementById("messages");
const form = document.getElementById("ask");
const text = document.getElementById("text");
const send = document.getElementById("send");

function bubble(role) {
  const item = document.createElement("li");
  item.className = role;
  list.appendChild(item);
  return item;
}

function scrollDown() { list.lastElementChild?.scrollIntoView({ block: "end" }); }

function headers() {
  const h = { "Content-Type": "application/json" };
  if (apiKey) h.Authorization = "Bearer " + apiKey;
  return h;
}

const sleep = (seconds) => new Promise((done) => setTimeout(done, seconds * 1000));

async function ask(item) {
  const body = JSON.stringify({ messages, stream: true });
  const post = () => fetch("/v1/chat/completions", { method: "POST", headers: headers(), body });
  let response = await post();
  if (response.status === 401) {
    apiKey = window.prompt("This server needs an access key:");
    response = await post();
  }
  for (let tries = 0; response.status === 429 && tries < 10; tries++) {  // busy: wait as the server says
    item.textContent = "Many people are talking right now. Your reply is coming, please stay…";
    await sleep(Math.min(Number(response.headers.get("Retry-After")) || 2, 10));
    response = await post();
  }
  item.textContent = "";
  return response;
}

async function reply(item) {
  const response = await ask(item);
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    throw new Error(error.error?.message || "the server answered " + response.status);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", whole = "", part = "answer", box = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.error) throw new Error(chunk.error.message);
      const piece = chunk.choices?.[0]?.delta?.content || "";
      if (chunk.mh_lightning_part && chunk.mh_lightning_part !== part) { part = chunk.mh_lightning_part; box = null; }
      whole += piece;
      if (part === "disclaimer") continue;
      if (!box) {
        box = document.createElement("span");
        if (part === "crisis" || part === "screened") box.className = "crisis";
        if (part === "footer") box.className = "footer";
        item.appendChild(box);
      }
      box.raw = (box.raw || "") + piece;
      box.textContent = box.raw.trim();
      scrollDown();
    }
  }
  return whole.trim();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = text.value.trim();
  if (!content || busy) return;
  busy = true;
  send.disabled = true;
  text.value = "";
  bubble("user").textContent = content;
  messages.push({ role: "user", content });
  const item = bubble("assistant");
  scrollDown();
  try {
    messages.push({ role: "assistant", content: await reply(item) });
  } catch (error) {
    messages.pop();
    item.classList.add("error");
    item.textContent = "Sorry, no reply came (" + error.message + "). Please try again.";
  } finally {
    busy = false;
    send.disabled = false;
    text.focus();
  }
});

text.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
});

document.getElementById("new").addEventListener("click", () => {
  if (busy) return;
  messages.length = 0;
  list.replaceChildren();
  text.value = "";
  text.focus();
});
