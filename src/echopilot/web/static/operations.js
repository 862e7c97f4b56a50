/* The operations panel: one row per operation, with its buttons once its feature exists. */
import { api, button, describe, el, fmt, notYet, runAction, safely, state } from "./core.js";
import { changesProposed } from "./optimizer.js";

export const OPERATIONS = [
  {
    feature: "self_heal",
    release: "self-heal",
    title: "Self-heal",
    text: "Re-queue stuck and failed jobs; list unpaid work.",
    summary: (r) =>
      "retried " +
      r.retried_count +
      ", recovered " +
      r.recovered_stuck +
      " stuck, " +
      r.dead +
      " dead, " +
      (r.eligible_unpaid || []).length +
      " unpaid to follow up" +
      (r.worker_restart_suggested ? "; restart the worker" : ""),
    actions: [
      { label: "Dry run", path: "/api/self-heal?dry_run=true" },
      { label: "Run self-heal", path: "/api/self-heal", primary: true },
    ],
  },
  {
    feature: "alerts",
    release: "alerts",
    title: "Alert check",
    text: "Evaluate the alert rules now and send what fires.",
    actions: [{ label: "Check alerts", path: "/api/alerts/trigger", primary: true }],
  },
  {
    feature: "optimizer",
    release: "optimiser",
    title: "Price optimiser",
    text: "Propose price changes from recent QA and margin.",
    summary: (r) =>
      r.dry_run
        ? changesProposed(r)
        : "applied to " + (r.applied.length ? r.applied.join(", ") : "no task type"),
    actions: [
      { label: "Preview", path: "/api/optimizer/run?dry_run=true" },
      {
        label: "Apply",
        path: "/api/optimizer/run",
        primary: true,
        confirm: "Apply the optimiser's price changes?",
      },
    ],
  },
  {
    feature: "retention",
    release: "retention",
    title: "Retention",
    text: "Prune logs, reports and rows past the keep window.",
    summary: (r) => {
      const rows = Object.values(r.rows || {}).reduce((n, v) => n + v, 0);
      const verb = r.dry_run ? "would delete " : "deleted ";
      return (
        verb +
        r.deleted +
        " files (" +
        fmt.bytes(r.bytes_freed) +
        ") and " +
        rows +
        " rows; keeping the newest " +
        r.keep +
        (r.errors ? "; " + r.errors + " errors" : "")
      );
    },
    actions: [
      { label: "Dry run", path: "/api/retention/run?dry_run=true", primary: true },
      {
        label: "Run retention",
        path: "/api/retention/run",
        confirm: "Delete data past the retention window?",
      },
    ],
  },
  {
    feature: "reports",
    release: "reports",
    title: "Daily report",
    text: "Write yesterday's report (JSON, HTML, CSV) and send its summary line.",
    summary: (r) => r.date + ": " + r.summary_line,
    actions: [{ label: "Build report", path: "/api/reports/daily", primary: true }],
  },
];

export function mountOperations(body) {
  const output = el("pre", { className: "op-output", attrs: { "aria-live": "polite" } });
  output.hidden = true;
  body.append(
    el("ul", { className: "op-list" }, ...OPERATIONS.map((op) => operationRow(op, output))),
    output,
  );
  return null;
}

function operationRow(op, output) {
  const head = el(
    "div",
    { className: "op-head" },
    el("strong", { text: op.title }),
    el("span", { className: "muted small", text: op.text }),
  );
  if (!state.features[op.feature]) {
    return el("li", { className: "op unavailable", data: { op: op.feature } }, head, notYet(op.release));
  }
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  const buttons = op.actions.map((a) =>
    button(
      a.label,
      async (ev) => {
        // A plain confirm() is enough for the two heavy, rare actions.
        if (a.confirm && !window.confirm(a.confirm)) return;
        const result = await runAction(ev.currentTarget, () => api(a.path, { method: "POST" }), {
          msgNode: msg,
          success: (r) => (op.summary && r ? safely(() => op.summary(r), "done") : "done") + ".",
        });
        if (result !== undefined) {
          output.textContent =
            op.title + (a.path.includes("dry_run") ? " (dry run)" : "") + "\n" + describe(result);
          output.hidden = false;
        }
      },
      "small " + (a.primary ? "primary" : ""),
    ),
  );
  return el(
    "li",
    { className: "op", data: { op: op.feature } },
    head,
    el("div", { className: "panel-actions" }, ...buttons, msg),
  );
}
