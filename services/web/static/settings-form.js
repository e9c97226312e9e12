// Inputs built from the form the server reads off the config models
// (GET /api/settings): shared by the settings page and the wizard, so no
// field is described twice. Changes are kept as dotted key -> value and
// checked by the server (POST /api/settings/check) as they are typed; its
// errors, in `pisentry check-config`'s words, go next to their fields.
"use strict";

async function call(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? "GET" : "POST", credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) { location.href = "/login"; throw new Error("login required"); }
  let data = null;
  try { data = await res.json(); } catch (e) { data = { detail: res.statusText }; }
  return { status: res.status, data };
}

function fieldId(key) { return "f-" + key.replace(/\./g, "__"); }

class SettingsForm {
  constructor(sections) {
    this.sections = sections;
    this.fields = {};
    for (const s of sections) for (const f of s.fields) this.fields[f.key] = f;
    this.changes = {};
    this.errors = [];
    this.onstate = () => {};
    this._timer = null;
    this._checked = 0;
  }

  section(key) { return this.sections.find((s) => s.key === key); }

  // New saved values, keeping the inputs already on the page bound to this form.
  refresh(sections) {
    for (const s of sections) for (const f of s.fields) {
      if (this.fields[f.key]) Object.assign(this.fields[f.key], f); else this.fields[f.key] = f;
    }
    this.sections = sections;
  }

  // One panel per section: its title, description, fields and error line.
  renderSection(section, only) {
    const panel = el("section", { class: "panel settings-section", id: "s-" + section.key });
    panel.append(el("h3", { text: section.title }));
    if (section.description) panel.append(el("p", { class: "muted", text: section.description }));
    panel.append(el("div", { class: "field-error", "data-key": section.key }));
    for (const f of section.fields) {
      if (!only || only.includes(f.key)) panel.append(this.renderField(f));
    }
    return panel;
  }

  renderField(f) {
    const id = fieldId(f.key);
    const row = el("div", { class: "field", "data-field": f.key });
    const label = el("label", { for: id, text: f.title });
    label.append(el("code", { class: "key", text: f.key }));
    let input;
    if (f.kind === "bool") {
      input = el("input", { id, type: "checkbox" });
      input.checked = !!f.value;
    } else if (f.kind === "enum") {
      input = el("select", { id });
      f.options.forEach((o, i) => input.append(el("option", { value: String(i), text: String(o) })));
      input.value = String(f.options.indexOf(f.value));
    } else if (f.kind === "json") {
      input = el("textarea", { id, rows: "3", spellcheck: "false" });
      input.value = JSON.stringify(f.value);
    } else if (f.kind === "secret") {
      input = el("input", { id, type: "password", autocomplete: "new-password",
                            placeholder: f.set ? "set (type to replace)" : "not set" });
    } else {
      const numeric = f.kind === "int" || f.kind === "float";
      input = el("input", { id, type: numeric ? "number" : "text" });
      if (numeric) {
        input.step = f.kind === "int" ? "1" : "any";
        if (f.min !== undefined) input.min = String(f.min);
        if (f.max !== undefined) input.max = String(f.max);
        input.inputMode = f.kind === "int" ? "numeric" : "decimal";
      }
      input.value = f.value === null || f.value === undefined ? "" : String(f.value);
    }
    input.dataset.key = f.key;
    input.addEventListener(f.kind === "bool" || f.kind === "enum" ? "change" : "input",
                           () => this.changed(f, input));
    row.append(label, input);
    const hint = [f.description];
    if (f.min !== undefined || f.max !== undefined) {
      hint.push(`(${f.min ?? "…"}${f.exclusive ? " <" : " ≤"} value ≤ ${f.max ?? "…"})`);
    }
    row.append(el("div", { class: "muted hint", text: hint.filter(Boolean).join(" ") }));
    row.append(el("div", { class: "field-error", "data-key": f.key }));
    return row;
  }

  valueOf(f, input) {
    if (f.kind === "bool") return input.checked;
    if (f.kind === "enum") return f.options[Number(input.value)];
    if (f.kind === "json") {
      try { return JSON.parse(input.value); } catch (e) { return { $invalid: e.message }; }
    }
    if (f.kind === "int" || f.kind === "float") {
      const raw = input.value.trim();
      if (raw === "" && f.optional) return null;  // unset: the default (e.g. follow the camera)
      // An empty or unparsable number goes as typed: the server names the problem.
      return raw !== "" && Number.isFinite(Number(raw)) ? Number(raw) : input.value;
    }
    return input.value;
  }

  changed(f, input) {
    const value = this.valueOf(f, input);
    const same = f.kind === "secret" ? value === ""
      : JSON.stringify(value) === JSON.stringify(f.value);
    if (same) delete this.changes[f.key]; else this.changes[f.key] = value;
    this.scheduleCheck();
  }

  set(key, value) {  // a change made by a button (the wizard's "allow this chat")
    const f = this.fields[key];
    const input = document.getElementById(fieldId(key));
    if (input && f.kind === "bool") input.checked = !!value;
    else if (input && f.kind === "json") input.value = JSON.stringify(value);
    else if (input && f.kind === "enum") input.value = String(f.options.indexOf(value));
    else if (input) input.value = String(value);
    this.changes[key] = value;
    this.scheduleCheck();
  }

  dirty() { return Object.keys(this.changes).length > 0; }
  secretChanged() { return Object.keys(this.changes).some((k) => this.fields[k]?.kind === "secret"); }

  scheduleCheck() {
    clearTimeout(this._timer);
    this.onstate();
    this._timer = setTimeout(() => this.check(), 200);
  }

  localErrors() {
    return Object.entries(this.changes)
      .filter(([, v]) => v && typeof v === "object" && "$invalid" in v)
      .map(([k, v]) => ({ key: k, message: `${k}: not valid JSON (${v.$invalid})` }));
  }

  async check() {
    const ticket = ++this._checked;
    const local = this.localErrors();
    let errors = local;
    if (!local.length && this.dirty()) {
      const { data } = await call("/api/settings/check", { changes: this.changes });
      if (ticket !== this._checked) return;  // a newer keystroke is being checked
      errors = data.errors || [];
    }
    this.showErrors(errors);
  }

  // An error's key may be below a field (detect.masks.0.1): it goes to the
  // nearest field or section shown.
  showErrors(errors) {
    this.errors = errors;
    document.querySelectorAll(".field-error").forEach((n) => { n.textContent = ""; });
    document.querySelectorAll(".field.invalid").forEach((n) => n.classList.remove("invalid"));
    const unplaced = [];
    for (const e of errors) {
      let key = e.key, slot = null;
      while (key && !(slot = document.querySelector(`.field-error[data-key="${CSS.escape(key)}"]`))) {
        key = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "";
      }
      if (!slot) { unplaced.push(e); continue; }
      slot.textContent = slot.textContent ? slot.textContent + "\n" + e.message : e.message;
      slot.closest(".field")?.classList.add("invalid");
    }
    this.unplaced = unplaced;
    this.onstate();
  }

  async save(currentPassword) {
    const { status, data } = await call("/api/settings",
      { changes: this.changes, current_password: currentPassword || "" });
    if (status === 422) this.showErrors(data.errors || [{ key: "", message: data.detail }]);
    if (status === 200) this.changes = {};
    return { status, data };
  }
}

// What a save did, in one sentence for the page.
function describeOutcome(status, data) {
  if (status === 403) return { ok: false, text: data.detail };
  if (status === 422) return { ok: false, text: "Not saved: fix the fields marked in red." };
  if (status === 409 && data.failed) {
    const why = Object.entries(data.failed).map(([s, line]) => `${s}: ${line}`).join("; ");
    return { ok: false, text: `Not applied: ${why}. The previous config was put back` +
      (data.rollback_failed && Object.keys(data.rollback_failed).length
        ? " but did not start either; see the Health page." : " and is running again.") };
  }
  if (status !== 200) return { ok: false, text: data.detail || `error ${status}` };
  if (!data.sections.length) return { ok: true, text: "Nothing changed." };
  const parts = [`Saved (${data.sections.join(", ")}).`];
  if (data.restarted.length) parts.push(`Restarted ${data.restarted.join(", ")}.`);
  if (data.restarting_later.length) parts.push("The web service restarts now; this page reloads.");
  if (data.not_running.length) parts.push(`Not running: ${data.not_running.join(", ")} ` +
    "(takes effect when started).");
  return { ok: true, text: parts.join(" ") };
}
