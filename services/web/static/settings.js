// The settings page: one tab per config section, inputs from the server's
// form (settings-form.js), a save bar that stays disabled while any field is
// invalid, the test buttons of the notifiers, the password and the history.
"use strict";

const TESTS = { "notify.telegram": "telegram", "notify.email": "email", "notify.mqtt": "mqtt",
                "notify.backup": "nas" };
let form = null;

function result(node, ok, text) {
  node.className = "result " + (ok ? "ok" : "bad");
  node.textContent = text;
}

function testButton(section) {
  const name = TESTS[section.key];
  const row = el("div", { class: "check-row" });
  const button = el("button", { id: "test-" + name, text: `Test ${section.title.toLowerCase()}` });
  const out = el("span", { id: "test-" + name + "-result", role: "status" });
  button.onclick = async () => {
    if (form.dirty()) { result(out, false, "Save first: the test uses the saved settings."); return; }
    result(out, true, "testing…");
    const { data } = await call("/api/settings/test/" + name, {});
    result(out, data.ok, data.message || data.detail);
  };
  row.append(button, out);
  if (name === "telegram") row.append(chatFinder());
  return row;
}

// The chats that have written to the bot, each with a button to allow it.
function chatFinder() {
  const box = el("div", { class: "chats" });
  const find = el("button", { id: "find-chats", text: "Find chats that wrote to the bot" });
  const list = el("ul", { id: "chat-list" });
  find.onclick = async () => {
    list.replaceChildren(el("li", { class: "muted", text: "asking Telegram…" }));
    const { data } = await call("/api/settings/telegram/chats", {});
    list.replaceChildren();
    if (!data.ok) { list.append(el("li", { class: "bad", text: data.message })); return; }
    if (!data.chats.length) {
      list.append(el("li", { class: "muted", text: "No chat yet: send your bot a message, then ask again." }));
    }
    for (const chat of data.chats) {
      const li = el("li", { text: `${chat.name || chat.username || "chat"} (${chat.type}, ${chat.id}) ` });
      if (chat.allowed) li.append(el("span", { class: "ok", text: "allowed" }));
      else {
        const allow = el("button", { class: "allow-chat", "data-chat": String(chat.id), text: "Allow" });
        allow.onclick = () => {
          const ids = form.changes["notify.telegram.chat_ids"] || form.fields["notify.telegram.chat_ids"].value;
          form.set("notify.telegram.chat_ids", [...new Set([...ids, chat.id])]);
          allow.replaceWith(el("span", { class: "ok", text: "allowed once saved" }));
        };
        li.append(allow);
      }
      list.append(li);
    }
  };
  box.append(find, list);
  return box;
}

function refreshSaveBar() {
  const save = document.getElementById("save");
  const state = document.getElementById("save-state");
  const n = Object.keys(form.changes).length;
  const bad = form.errors.length + form.localErrors().length;
  save.disabled = n === 0 || bad > 0;
  document.getElementById("secret-pw").hidden = !form.secretChanged();
  state.textContent = bad ? `${bad} field(s) invalid: nothing can be saved` :
    n ? `${n} unsaved change(s)` : "no changes";
  if (form.unplaced && form.unplaced.length) {
    result(document.getElementById("save-result"), false,
           form.unplaced.map((e) => e.message).join("\n"));
  }
}

function showTab(key) {
  document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("here", b.dataset.tab === key));
  document.querySelectorAll(".settings-section").forEach((s) => {
    const k = s.id.slice(2);
    s.hidden = !(k === key || k.startsWith(key + "."));
  });
  document.getElementById("account").hidden = key !== "general";
  history.replaceState(null, "", "#" + key);
}

async function load() {
  const { status, data } = await call("/api/settings");
  const box = document.getElementById("sections");
  if (status !== 200) { box.replaceChildren(el("p", { class: "bad", text: data.detail })); return; }
  form = new SettingsForm(data.sections);
  form.onstate = refreshSaveBar;
  const tabs = document.getElementById("tabs");
  tabs.replaceChildren();
  box.replaceChildren();
  for (const section of data.sections) {
    if (!section.key.includes(".")) {
      const b = el("button", { "data-tab": section.key, role: "tab", text: section.title });
      b.onclick = () => showTab(section.key);
      tabs.append(b);
    }
    const panel = form.renderSection(section);
    if (TESTS[section.key]) panel.append(testButton(section));
    box.append(panel);
  }
  const wanted = location.hash.slice(1);
  showTab(data.sections.some((s) => s.key === wanted) ? wanted : "general");
  refreshSaveBar();
  loadHistory();
}

async function loadHistory() {
  const { data } = await call("/api/settings/history");
  const list = document.getElementById("history");
  list.replaceChildren(...data.map((v) => el("li", {
    text: `${new Date(v.saved_at * 1000).toLocaleString()}: ${v.by}` +
          (v.sections.length ? ` (${v.sections.join(", ")})` : "") })));
  if (!data.length) list.append(el("li", { text: "none yet" }));
}

async function save() {
  const out = document.getElementById("save-result");
  document.getElementById("save").disabled = true;
  result(out, true, "saving and restarting what changed…");
  const { status, data } = await form.save(document.getElementById("save-password").value);
  const said = describeOutcome(status, data);
  if (status === 200) {
    document.getElementById("save-password").value = "";
    const tab = location.hash.slice(1);
    await load();
    showTab(tab || "general");
  }
  result(out, said.ok, said.text);
  if (status === 200 && data.restarting_later.length) setTimeout(() => location.reload(), 4000);
  refreshSaveBar();
}

async function changePassword() {
  const out = document.getElementById("pw-result");
  const { status, data } = await call("/api/settings/password", {
    current_password: document.getElementById("pw-current").value,
    new_password: document.getElementById("pw-new").value });
  if (status !== 200) { result(out, false, data.detail); return; }
  // Every session ends with the old password: log this one in again.
  await call("/login", { username: "admin", password: document.getElementById("pw-new").value });
  result(out, true, "Password changed; other sessions are logged out.");
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("save").onclick = save;
  document.getElementById("pw-save").onclick = changePassword;
  load();
});
