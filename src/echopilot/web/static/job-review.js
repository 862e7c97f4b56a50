/*
 * Approve or reject a job that needs review (POST /api/jobs/{id}/approve | reject).
 * Approving makes it done and billed; rejecting cancels it unbilled, with the reason
 * (asked for in a small form here, never window.prompt) kept as the job's error.
 */
import { api, button, el, runAction } from "./core.js";

const MAX_REASON = 500;

/**
 * The Approve and Reject buttons and the reject form for `job` (none unless it needs
 * review). `msg` shows outcomes; `onDone(job, notice, id)` gets the changed job.
 */
export function reviewControls(job, msg, onDone) {
  if (job.status !== "needs_review") return { buttons: [], form: null };
  const base = "/api/jobs/" + job.id;

  const approve = button(
    "Approve",
    async (ev) => {
      const notice = "Approved: done and billed.";
      const result = await runAction(ev.currentTarget, () => api(base + "/approve", { method: "POST" }), {
        busyLabel: "Approving…",
        msgNode: msg,
        success: () => notice,
      });
      if (result) onDone(result, notice, job.id);
    },
    "small primary approve",
  );

  const reason = el("textarea", {
    attrs: { id: "reject-reason", rows: "2", maxlength: String(MAX_REASON), autocomplete: "off" },
  });
  const confirm = el("button", { type: "submit", className: "btn small danger", text: "Reject job" });
  const keep = button("Keep for review", () => closeForm(), "small ghost");
  const form = el(
    "form",
    {
      className: "review-form",
      attrs: { "aria-label": "Reject job " + job.id, novalidate: "" },
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          const text = reason.value.trim();
          const init = { method: "POST" };
          if (text) init.body = { reason: text };
          const notice = "Rejected: cancelled, not billed.";
          const result = await runAction(confirm, () => api(base + "/reject", init), {
            busyLabel: "Rejecting…",
            msgNode: msg,
            success: () => notice,
          });
          if (result) onDone(result, notice, job.id);
        },
      },
    },
    el("label", {
      text: "Why is it rejected? (optional; kept as the job's error)",
      attrs: { for: "reject-reason" },
    }),
    reason,
    el("div", { className: "form-actions" }, confirm, keep),
  );
  form.hidden = true;

  const reject = button("Reject…", () => {
    form.hidden = false;
    reject.setAttribute("aria-expanded", "true");
    reason.focus();
  }, "small reject");
  reject.setAttribute("aria-expanded", "false");

  function closeForm() {
    form.hidden = true;
    reason.value = "";
    reject.setAttribute("aria-expanded", "false");
    reject.focus();
  }

  return { buttons: [approve, reject], form };
}
