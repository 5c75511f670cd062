// @module daemon/ui/assets/ui
// The UI's only script (no framework, no build step): action buttons, the
// live event stream and the log follower. Everything the server sends is
// either server-escaped HTML fragments (rows, summaries) or text that goes
// through textContent, never innerHTML, so guest output cannot inject markup.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="aegis-csrf"]').content;
  const flash = document.getElementById("flash");
  const live = document.getElementById("live");

  function say(message, kind) {
    flash.textContent = message;
    flash.dataset.kind = kind || "error";
  }

  async function act(action, ref, body) {
    const res = await fetch(`/instances/${encodeURIComponent(ref)}/${action}`, {
      method: "POST",
      headers: { "X-Aegis-CSRF": csrf, "content-type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const reply = await res.json().catch(() => ({}));
    if (!res.ok) {
      const e = reply.error || {};
      say(`${action} failed: ${e.message || res.status}${e.hint ? ` (${e.hint})` : ""}`);
      return false;
    }
    say("", "ok");
    return true;
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
    const body = b.dataset.port ? { port: Number(b.dataset.port) } : undefined;
    b.disabled = true;
    act(b.dataset.action, b.dataset.ref, body)
      .then((ok) => {
        if (ok && b.dataset.action === "delete" && document.querySelector("[data-summary]")) location.assign("/instances");
      })
      .finally(() => {
        b.disabled = false;
      });
  });

  document.addEventListener("submit", (ev) => {
    const f = ev.target.closest("form[data-expose]");
    if (!f) return;
    ev.preventDefault();
    act("expose", f.dataset.expose, { port: Number(new FormData(f).get("port")) });
  });

  function fragment(html) {
    const t = document.createElement("template");
    t.innerHTML = html;
    return t.content.firstElementChild;
  }

  function onInstance(m) {
    const row = document.querySelector(`tr[data-instance="${CSS.escape(m.id)}"]`);
    const summary = document.querySelector(`section[data-summary="${CSS.escape(m.id)}"]`);
    if (m.deleted) {
      if (row) row.remove();
      if (summary) say("this instance was deleted");
      return;
    }
    if (row) row.replaceWith(fragment(m.row));
    else {
      const list = document.querySelector('table[data-live-list="instances"] tbody');
      if (list) list.append(fragment(m.row));
    }
    if (summary) {
      summary.replaceWith(fragment(m.summary));
      if (m.state === "running" && logs && logs.ended) followLogs(true);
    }
  }

  function connect() {
    const es = new EventSource("/events");
    es.addEventListener("hello", () => {
      live.dataset.live = "on";
      live.textContent = "live";
    });
    es.addEventListener("instance", (ev) => onInstance(JSON.parse(ev.data)));
    es.onerror = () => {
      live.dataset.live = "off";
      live.textContent = "reconnecting…";
    };
  }

  const pre = document.getElementById("logs");
  let logs = null;
  function followLogs(fresh) {
    if (!pre) return;
    if (fresh) pre.textContent = "";
    const es = new EventSource(pre.dataset.logs);
    logs = { es, ended: false };
    const append = (text, cls) => {
      const span = document.createElement("span");
      if (cls) span.className = cls;
      span.textContent = text;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(span);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
    es.addEventListener("line", (ev) => {
      const l = JSON.parse(ev.data);
      append(l.text, l.stream === "stderr" ? "stderr" : "");
    });
    es.addEventListener("skipped", (ev) => append(`[… ${JSON.parse(ev.data).lines} lines skipped; aegis logs has them all]\n`, "note"));
    es.addEventListener("end", () => {
      logs.ended = true;
      es.close();
      append("[output closed]\n", "note");
    });
  }

  // The tether chat: sent messages are shown at once; the agent's frames
  // arrive on the chat stream and are threaded by `reply_to`.
  const chat = document.getElementById("chat");
  function startChat() {
    if (!chat) return;
    const box = document.getElementById("messages");
    const presence = document.getElementById("presence");
    const replies = new Map();
    const bubble = (cls, text) => {
      const div = document.createElement("div");
      div.className = `msg ${cls}`;
      div.textContent = text;
      box.append(div);
      box.scrollTop = box.scrollHeight;
      return div;
    };
    const replyFor = (id) => {
      const key = id || "?";
      if (!replies.has(key)) replies.set(key, bubble("assistant", ""));
      return replies.get(key);
    };
    document.getElementById("chat-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const input = ev.target.elements.text;
      const text = input.value;
      if (!text) return;
      input.value = "";
      bubble("user", text);
      const res = await fetch(chat.dataset.chat, {
        method: "POST",
        headers: { "X-Aegis-CSRF": csrf, "content-type": "application/json" },
        body: JSON.stringify({ text }),
      });
      const reply = await res.json().catch(() => ({}));
      if (!res.ok) say(`send failed: ${(reply.error && reply.error.message) || res.status}`);
    });
    const es = new EventSource(`${chat.dataset.chat}/stream`);
    es.addEventListener("frame", (ev) => {
      const f = JSON.parse(ev.data);
      if (f.type === "status.presence") {
        presence.dataset.presence = f.payload.state;
        presence.textContent = f.payload.state === "idle" ? "" : `${f.payload.state}…`;
      } else if (f.type === "assistant.delta") {
        replyFor(f.reply_to).textContent += f.payload.text;
      } else if (f.type === "assistant.done") {
        const b = replyFor(f.reply_to);
        b.textContent = f.payload.text;
        b.dataset.done = "true";
        if (f.payload.error) b.dataset.error = `${f.payload.error.code}: ${f.payload.error.message}`;
      }
      box.scrollTop = box.scrollHeight;
    });
  }

  // POST a JSON body and hand each NDJSON line of the answer to `onLine`.
  async function streamNdjson(url, body, onLine) {
    const res = await fetch(url, { method: "POST", headers: { "X-Aegis-CSRF": csrf, "content-type": "application/json" }, body: JSON.stringify(body) });
    if (!res.ok) {
      const e = (await res.json().catch(() => ({}))).error || {};
      throw new Error(`${e.message || res.status}${e.hint ? ` (${e.hint})` : ""}`);
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      const lines = buf.split("\n");
      buf = lines.pop();
      for (const l of lines) if (l) onLine(JSON.parse(l));
    }
  }

  function decodeChunk(line) {
    if (line.text !== undefined) return line.text;
    const bin = atob(line.data || "");
    return new TextDecoder().decode(Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
  }

  const execForm = document.getElementById("exec-form");
  if (execForm) {
    const outEl = document.getElementById("exec-output");
    execForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const command = new FormData(execForm).get("command");
      outEl.textContent = "";
      outEl.dataset.state = "running";
      const add = (text, cls) => {
        const span = document.createElement("span");
        if (cls) span.className = cls;
        span.textContent = text;
        outEl.append(span);
      };
      streamNdjson(execForm.dataset.exec, { command: ["sh", "-c", command] }, (l) => {
        if (l.type === "output") add(decodeChunk(l), l.stream === "stderr" ? "stderr" : "");
        else if (l.type === "exit") {
          add(`[exit ${l.code}${l.signal ? ` ${l.signal}` : ""}${l.timed_out ? ", timed out" : ""}]\n`, "note");
          outEl.dataset.exit = String(l.code);
        } else if (l.type === "error") add(`[error: ${l.error.message}]\n`, "stderr");
      })
        .catch((err) => add(`[${err.message}]\n`, "stderr"))
        .finally(() => (outEl.dataset.state = "done"));
    });
  }

  const pullForm = document.getElementById("pull-form");
  if (pullForm) {
    const outEl = document.getElementById("pull-output");
    pullForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const ref = new FormData(pullForm).get("ref");
      outEl.textContent = `pulling ${ref}\n`;
      const layers = new Map();
      const render = (tail) => {
        const rows = [...layers].map(([d, p]) => `${d.slice(7, 19)}  ${p}`);
        outEl.textContent = [`pulling ${ref}`, ...rows, tail || ""].join("\n");
      };
      streamNdjson("/images/pull", { ref }, (l) => {
        if (l.type === "progress") {
          const p = l.progress;
          if (p.layer) layers.set(p.layer, p.total ? `${Math.round(((p.bytes || 0) * 100) / p.total)}% of ${p.total} bytes` : `${p.phase} ${p.bytes || 0} bytes`);
          render(p.layer ? "" : p.phase);
        } else if (l.type === "done") {
          render(`done: ${l.image.ref} ${l.image.digest}`);
          setTimeout(() => location.reload(), 800);
        } else if (l.type === "error") render(`error: ${l.error.message}${l.error.hint ? ` (${l.error.hint})` : ""}`);
      }).catch((err) => render(`error: ${err.message}`));
    });
  }

  connect();
  followLogs(false);
  startChat();
})();
