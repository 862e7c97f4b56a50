/*
 * The job detail dialog: the job's fields, its actions (Retry, Cancel, Mark paid, and for a
 * job that needs review Approve and Reject), the QA breakdown, the input, the attempts and
 * the result.
 */
import {
  $,
  CANCELLABLE,
  DASH,
  OWED,
  RETRYABLE,
  api,
  button,
  el,
  fmt,
  jobsChanged,
  notBilled,
  notBilledReason,
  reportable,
  runAction,
  setMsg,
  state,
  statusBadge,
} from "./core.js";
import { inputSection, qaBreakdownSection } from "./job-input.js";
import { reviewControls } from "./job-review.js";

const DETAIL_ORDER = [
  "id",
  "name",
  "status",
  "task_type",
  "client",
  "source",
  "priority",
  "attempts",
  "max_attempts",
  "qa_score",
  "qa_threshold",
  "qa_target",
  "qa_note",
  "provider",
  "model",
  "answer_path",
  "tokens_in",
  "tokens_out",
  "cost_usd",
  "cost_known_usd",
  "unpriced_models",
  "price_usd",
  "payment_status",
  "error",
  "error_kind",
  "retry_at",
  "hold_reason",
  "created_at",
  "started_at",
  "finished_at",
  "duration_ms",
  "input_chars",
];
// Shown in sections of their own, not as fields.
const NOT_FIELDS = new Set(["attempt_log", "result", "input", "input_truncated", "qa_breakdown"]);
// Attempt columns after # and status: [heading, cell text, class suffix]. Tokens share
// one column to keep the table narrow enough for the dialog.
const ATTEMPT_COLUMNS = [
  ["model", (a) => a.model || DASH, "model"],
  ["tokens in / out", (a) => fmt.num(a.tokens_in) + " / " + fmt.num(a.tokens_out), "tokens"],
  ["cost", (a) => fmt.jobCost(a.cost_usd), "cost_usd"],
  ["latency", (a) => fmt.duration(a.latency_ms), "latency_ms"],
  ["worker", (a) => a.worker || DASH, "worker"],
  ["started", (a) => fmt.when(a.started_at), "started_at"],
  ["calls", (a) => (a.calls || []).length, "calls"],
  ["error", (a) => a.error || DASH, "error"],
];

export async function openJob(id) {
  const dialog = $("job-dialog");
  $("job-dialog-title").textContent = "Job " + id;
  $("job-dialog-body").replaceChildren(el("p", { className: "muted", text: "Loading…" }));
  if (!dialog.open) dialog.showModal();
  try {
    renderJobDetail(await api("/api/jobs/" + id));
  } catch (err) {
    if (reportable(err))
      $("job-dialog-body").replaceChildren(el("p", { className: "form-msg error", text: err.message }));
  }
}

/** Render `job` in the dialog; `notice` is the outcome of the action that led here. */
function renderJobDetail(job, notice) {
  $("job-dialog-title").textContent = "Job " + job.id + ": " + job.name;
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  if (notice) setMsg(msg, notice, "ok");
  const review = reviewControls(job, msg, changed);
  $("job-dialog-body").replaceChildren(
    ...[
      el(
        "div",
        { className: "detail-actions" },
        statusBadge(job.status),
        ...review.buttons,
        ...jobActions(job, msg),
        msg,
      ),
      review.form,
      detailFields(job),
      qaBreakdownSection(job.qa_breakdown),
      inputSection(job),
      el("h3", { text: "Attempts" }),
      attemptsTable(job.attempt_log || []),
      el("h3", { text: "Result" }),
      el("pre", { className: "result-text", text: job.result || "(no result yet)" }),
    ].filter(Boolean),
  );
}

/** After an action answered with the job: reload the table, show the job as it is now. */
function changed(job, notice, id) {
  jobsChanged();
  if (job && job.id === id && "attempt_log" in job) renderJobDetail(job, notice);
  else openJob(id);
}

function jobActions(job, msg) {
  const act = (label, path, busyLabel, done) =>
    button(
      label,
      async (ev) => {
        const result = await runAction(ev.currentTarget, () => api(path, { method: "POST" }), {
          busyLabel,
          msgNode: msg,
          success: done,
        });
        if (result) changed(result, done(result), job.id);
      },
      "small",
    );
  const out = [];
  if (RETRYABLE.has(job.status))
    out.push(act("Retry", "/api/jobs/" + job.id + "/retry", "Retrying…", () => "Queued again."));
  if (CANCELLABLE.has(job.status))
    out.push(act("Cancel", "/api/jobs/" + job.id + "/cancel", "Cancelling…", () => "Cancelled."));
  if (state.features.payments && OWED.has(job.payment_status)) {
    out.push(act("Mark paid", "/api/payments/" + job.id + "/mark-paid", "Marking…", () => "Marked paid."));
  }
  return out;
}

function fieldText(job, key) {
  const value = job[key];
  if (key === "cost_usd" || key === "cost_known_usd") return fmt.jobCost(value);
  if (key === "price_usd" && notBilled(job)) return fmt.money(value) + " (not billed)";
  if (key === "payment_status" && value === "na") return "not billed";
  return fmt.any(key, value);
}

function fieldTitle(job, key) {
  if (key === "price_usd" && notBilled(job)) return notBilledReason(job);
  return typeof job[key] === "string" ? job[key] : "";
}

function detailFields(job) {
  const keys = DETAIL_ORDER.filter((k) => k in job).concat(
    Object.keys(job).filter((k) => !DETAIL_ORDER.includes(k) && !NOT_FIELDS.has(k)),
  );
  const list = el("dl", { className: "fields" });
  keys.forEach((k) => {
    list.append(
      el(
        "div",
        { className: "field-row", data: { field: k } },
        el("dt", { text: fmt.fieldLabel(k) }),
        el("dd", { text: fieldText(job, k), title: fieldTitle(job, k) }),
      ),
    );
  });
  return list;
}

function attemptsTable(attempts) {
  if (!attempts.length) return el("p", { className: "muted", text: "No attempts yet." });
  const th = (text) => el("th", { text, attrs: { scope: "col" } });
  const head = el("tr", {}, th("#"), th("status"), ...ATTEMPT_COLUMNS.map(([title]) => th(title)));
  const rows = attempts.map((a) =>
    el(
      "tr",
      {},
      el("td", { text: a.n }),
      el("td", {}, statusBadge(a.status)),
      ...ATTEMPT_COLUMNS.map(([, cell, key]) => el("td", { className: "col-" + key, text: cell(a) })),
    ),
  );
  return el(
    "div",
    { className: "table-wrap" },
    el("table", { className: "table compact attempts" }, el("thead", {}, head), el("tbody", {}, ...rows)),
  );
}

export function bindDialog() {
  $("job-dialog-close").addEventListener("click", () => $("job-dialog").close());
  $("job-dialog").addEventListener("click", (ev) => {
    if (ev.target === ev.currentTarget) ev.currentTarget.close(); // click on the backdrop
  });
}

export function clearDialog() {
  $("job-dialog-body").replaceChildren();
  if ($("job-dialog").open) $("job-dialog").close();
}
