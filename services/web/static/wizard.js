// The first-run wizard: camera (with a live preview), password, Telegram
// (token, then the chats that wrote to the bot, one click to allow), NAS.
// Its inputs come from the same form as the settings page; each step saves
// through the same API.
"use strict";

let form = null;
let password = "";  // the current one, once typed, for steps that change a secret
let current = 0;

const STEPS = [
  { name: "Camera", render: cameraStep },
  { name: "Password", render: passwordStep },
  { name: "Telegram", render: telegramStep },
  { name: "NAS backup", render: nasStep },
];

function panel(title, ...children) {
  const p = el("section", { class: "panel" }, el("h3", { text: title }));
  p.append(...children);
  return p;
}

function fieldsOf(keys) {
  const box = el("div");
  for (const key of keys) if (form.fields[key]) box.append(form.renderField(form.fields[key]));
  return box;
}

function outcome(node, ok, text) { node.className = "result " + (ok ? "ok" : "bad"); node.textContent = text; }

async function saveStep(out) {
  if (!form.dirty()) return true;
  outcome(out, true, "saving…");
  const { status, data } = await form.save(password);
  const said = describeOutcome(status, data);
  outcome(out, said.ok, said.text);
  if (status === 200) await reloadForm();
  return status === 200;
}

async function reloadForm() {
  const { data } = await call("/api/settings");
  if (form) form.refresh(data.sections); else form = new SettingsForm(data.sections);
}

function passwordInput(id, label) {
  const input = el("input", { id, type: "password", autocomplete: "current-password" });
  input.value = password;
  input.oninput = () => { password = input.value; };
  return el("div", { class: "field" }, el("label", { for: id, text: label }), input);
}

// -- steps ----------------------------------------------------------------------------
async function cameraStep(box) {
  const out = el("div", { id: "camera-result", role: "status" });
  const devices = el("ul", { id: "v4l2-devices" });
  const { data } = await call("/api/settings/v4l2");
  for (const d of data) {
    const use = el("button", { text: "Use", "data-device": String(d.device) });
    use.onclick = () => { form.set("capture.source", "v4l2"); form.set("capture.device", d.device); };
    devices.append(el("li", { text: `${d.path} ${d.name} ` }, use));
  }
  if (!data.length) devices.append(el("li", { class: "muted", text: "no video devices on this machine" }));
  const preview = el("img", { class: "preview", id: "preview", alt: "live preview", src: "/stream.mjpg" });
  const apply = el("button", { id: "camera-apply", class: "primary", text: "Save and preview" });
  apply.onclick = async () => {
    if (await saveStep(out)) preview.src = "/stream.mjpg?t=" + Date.now();
  };
  box.append(panel("Camera source", preview,
    fieldsOf(["capture.source", "capture.device", "capture.url", "capture.path"]),
    el("p", { class: "muted", text: "Video devices found:" }), devices, apply, out));
}

function passwordStep(box) {
  const out = el("div", { id: "password-result", role: "status" });
  const fresh = el("input", { id: "new-password", type: "password", autocomplete: "new-password" });
  const again = el("input", { id: "new-password-again", type: "password", autocomplete: "new-password" });
  const change = el("button", { id: "password-apply", class: "primary", text: "Change password" });
  change.onclick = async () => {
    if (fresh.value !== again.value) { outcome(out, false, "The two new passwords differ."); return; }
    const { status, data } = await call("/api/settings/password",
      { current_password: password, new_password: fresh.value });
    if (status !== 200) { outcome(out, false, data.detail); return; }
    password = fresh.value;
    await call("/login", { username: "admin", password });  // the change ended every session
    outcome(out, true, "Password changed.");
  };
  box.append(panel("Your own password",
    el("p", { class: "muted", text: "Replace the generated password printed on the first start." }),
    passwordInput("current-password", "Current password"),
    el("div", { class: "field" }, el("label", { for: "new-password", text: "New password" }), fresh),
    el("div", { class: "field" }, el("label", { for: "new-password-again", text: "Again" }), again),
    change, out));
}

function telegramStep(box) {
  const out = el("div", { id: "telegram-result", role: "status" });
  const saveToken = el("button", { id: "telegram-save", class: "primary", text: "Save token" });
  saveToken.onclick = () => saveStep(out);
  const find = el("button", { id: "find-chats", text: "Find chats that wrote to the bot" });
  const list = el("ul", { id: "chat-list", class: "chats" });
  find.onclick = async () => {
    if (!(await saveStep(out))) return;
    const { data } = await call("/api/settings/telegram/chats", {});
    list.replaceChildren();
    if (!data.ok) { outcome(out, false, data.message); return; }
    if (!data.chats.length) list.append(el("li", { class: "muted", text: "No chat yet: send your bot a message, then ask again." }));
    for (const chat of data.chats) {
      const li = el("li", { text: `${chat.name || chat.username || "chat"} (${chat.type}, ${chat.id}) ` });
      if (chat.allowed) li.append(el("span", { class: "ok", text: "allowed" }));
      else {
        const allow = el("button", { class: "allow-chat", "data-chat": String(chat.id), text: "Allow" });
        allow.onclick = async () => {
          const ids = form.fields["notify.telegram.chat_ids"].value;
          form.set("notify.telegram.chat_ids", [...new Set([...ids, chat.id])]);
          form.set("notify.telegram.enabled", true);
          if (await saveStep(out)) allow.replaceWith(el("span", { class: "ok", text: "allowed" }));
        };
        li.append(allow);
      }
      list.append(li);
    }
  };
  const test = el("button", { id: "test-telegram", text: "Send a test photo" });
  const testOut = el("span", { id: "test-telegram-result", role: "status" });
  test.onclick = async () => {
    outcome(testOut, true, "sending…");
    const { data } = await call("/api/settings/test/telegram", {});
    outcome(testOut, data.ok, data.message || data.detail);
  };
  box.append(panel("Telegram alerts",
    el("p", { class: "muted", text: "Make a bot with @BotFather, paste its token, send the bot a message from your phone, then find your chat." }),
    fieldsOf(["notify.telegram.token"]), passwordInput("telegram-password", "Current password (to store the token)"),
    saveToken, el("div", { class: "check-row" }, find), list,
    el("div", { class: "check-row" }, test, testOut), out));
}

function nasStep(box) {
  const out = el("div", { id: "nas-result", role: "status" });
  const save = el("button", { id: "nas-save", class: "primary", text: "Save" });
  save.onclick = () => saveStep(out);
  const test = el("button", { id: "test-nas", text: "Test the NAS" });
  const testOut = el("span", { id: "test-nas-result", role: "status" });
  test.onclick = async () => {
    if (!(await saveStep(out))) return;
    outcome(testOut, true, "connecting…");
    const { data } = await call("/api/settings/test/nas", {});
    outcome(testOut, data.ok, data.message || data.detail);
  };
  const keys = ["enabled", "host", "port", "username", "key_file", "known_hosts", "remote_dir"];
  box.append(panel("Back clips up to a NAS over SSH",
    fieldsOf(keys.map((k) => "notify.backup." + k)), save,
    el("div", { class: "check-row" }, test, testOut), out));
}

// -- frame ----------------------------------------------------------------------------
async function show(i) {
  current = i;
  document.getElementById("steps").replaceChildren(...STEPS.map((s, n) =>
    el("span", { class: n === i ? "here" : "", text: `${n + 1}. ${s.name}` })));
  const box = document.getElementById("step");
  box.replaceChildren();
  form.changes = {};
  await STEPS[i].render(box);
  document.getElementById("back").disabled = i === 0;
  document.getElementById("next").textContent = i === STEPS.length - 1 ? "Finish" : "Next";
}

async function finish(state) {
  await call("/api/wizard", { state });
  location.href = "/";
}

document.addEventListener("DOMContentLoaded", async () => {
  await reloadForm();
  form.onstate = () => {};
  document.getElementById("back").onclick = () => show(Math.max(0, current - 1));
  document.getElementById("next").onclick = () =>
    current === STEPS.length - 1 ? finish("done") : show(current + 1);
  document.getElementById("skip").onclick = () => finish("skipped");
  show(0);
});
