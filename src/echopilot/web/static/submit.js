/* The "Submit job" form: POST /api/jobs, with each field's error shown under the field. */
import { $, api, fmt, jobsChanged, runAction } from "./core.js";

function formFields(form) {
  const value = (name) => form.elements[name].value.trim();
  const body = { name: value("name"), task_type: value("task_type"), input: form.elements.input.value };
  if (value("client")) body.client = value("client");
  if (value("qa_target") !== "") body.qa_target = Number(value("qa_target"));
  return body;
}

function clearFieldErrors(form) {
  form.querySelectorAll(".field").forEach((f) => {
    f.classList.remove("invalid");
    const p = f.querySelector(".field-error");
    p.textContent = "";
    p.hidden = true;
    f.querySelector("input, select, textarea").removeAttribute("aria-invalid");
  });
}

/** Put each "field: message" part of error.message under the field error.fields names. */
function showFieldErrors(form, err) {
  const parts = {};
  String(err.message)
    .split("; ")
    .forEach((part) => {
      const i = part.indexOf(": ");
      if (i > 0) parts[part.slice(0, i)] = part.slice(i + 2);
    });
  let first = null;
  (err.fields || []).forEach((name) => {
    const field = form.querySelector('.field[data-field="' + CSS.escape(name) + '"]');
    if (!field) return;
    field.classList.add("invalid");
    const p = field.querySelector(".field-error");
    p.textContent = parts[name] || err.message;
    p.hidden = false;
    const input = field.querySelector("input, select, textarea");
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  });
  if (first) first.focus();
}

async function onSubmitJob(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearFieldErrors(form);
  const submit = () => api("/api/jobs", { method: "POST", body: formFields(form) });
  const job = await runAction($("submit-job"), submit, {
    busyLabel: "Submitting…",
    msgNode: $("submit-msg"),
    success: (j) => "Job " + j.id + " submitted (" + fmt.label(j.status) + ").",
    onError: (err) => showFieldErrors(form, err),
  });
  if (job) {
    form.reset();
    jobsChanged();
  }
}

export function bindSubmitForm() {
  $("submit-form").addEventListener("submit", onSubmitJob);
}
