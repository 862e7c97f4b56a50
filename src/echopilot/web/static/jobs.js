/*
 * The jobs table: filter, pages ("More"), Retry, and a row opens the job's detail.
 * Anything that changes a job dispatches "echopilot:jobs-changed" on document; the table
 * reloads on it.
 */
import {
  $,
  DASH,
  JOBS_CHANGED,
  RETRYABLE,
  api,
  button,
  el,
  fmt,
  hasBusy,
  notBilled,
  notBilledReason,
  reportable,
  runAction,
  setMsg,
  show,
  state,
  statusBadge,
} from "./core.js";
import { openJob } from "./job-detail.js";

const PAGE_SIZE = 50;
const MAX_PAGE = 500;
const COLUMNS = 11;

function placeholderRow(text) {
  return el("tr", {}, el("td", { className: "empty", text, attrs: { colspan: String(COLUMNS) } }));
}

/** Filter the table; rows of the previous filter go at once, so none is mistaken for a match. */
export function setJobsFilter(status) {
  $("jobs-filter").value = status;
  state.jobs = [];
  state.nextCursor = null;
  show($("jobs-more"), false);
  $("jobs-body").replaceChildren(placeholderRow("Loading…"));
  loadJobs({ reset: true }).catch(() => {});
}

/**
 * Load jobs. An automatic refresh reloads as many rows as are shown, so pages already
 * opened with "more" stay open; `append` adds the next page.
 */
export async function loadJobs(opts) {
  const o = opts || {};
  const body = $("jobs-body");
  if (o.auto && hasBusy(body)) return;
  const seq = ++state.jobsSeq;
  const params = new URLSearchParams();
  const shown = state.jobs.length;
  params.set("limit", String(o.append ? PAGE_SIZE : Math.min(MAX_PAGE, Math.max(PAGE_SIZE, shown))));
  if (o.append && state.nextCursor) params.set("cursor", String(state.nextCursor));
  const status = $("jobs-filter").value;
  if (status) params.set("status", status);
  if (o.reset) setMsg($("jobs-msg"), "Loading…", "busy");
  try {
    const data = await api("/api/jobs?" + params.toString());
    if (seq !== state.jobsSeq || !state.running) return;
    state.jobs = o.append ? state.jobs.concat(data.items) : data.items;
    state.nextCursor = data.next_cursor;
    renderJobs();
  } catch (err) {
    if (seq === state.jobsSeq && reportable(err))
      setMsg($("jobs-msg"), "Could not load jobs: " + err.message, "error");
    throw err;
  }
}

/** The price, marked "not billed" when payment_status is "na" (needs review, offline). */
function priceCell(job) {
  const cell = el("td", { className: "num price" });
  if (job.price_usd === null || job.price_usd === undefined) {
    cell.textContent = DASH;
  } else if (notBilled(job)) {
    cell.classList.add("not-billed");
    cell.title = notBilledReason(job);
    cell.append(
      el("span", { className: "price-amount", text: fmt.money(job.price_usd) }),
      " ",
      el("span", { className: "not-billed-tag", text: "(not billed)" }),
    );
  } else {
    cell.textContent = fmt.money(job.price_usd);
  }
  return cell;
}

function costCell(job) {
  if (job.cost_usd !== null) return el("td", { className: "num cost", text: fmt.jobCost(job.cost_usd) });
  return el(
    "td",
    { className: "num cost" },
    el("span", {
      className: "warn-text",
      text: "unknown",
      title: "no price for: " + job.unpriced_models.join(", "),
    }),
  );
}

function jobRow(job) {
  const qaLow = job.qa_score !== null && job.qa_threshold !== null && job.qa_score < job.qa_threshold;
  const actions = el("td", { className: "actions" });
  if (RETRYABLE.has(job.status)) {
    actions.append(
      button(
        "Retry",
        (ev) => {
          ev.stopPropagation();
          retryJob(job.id, ev.currentTarget);
        },
        "small retry",
      ),
    );
  }
  return el(
    "tr",
    {
      className: "clickable",
      data: { jobId: job.id, status: job.status },
      attrs: { tabindex: "0", "aria-label": "Job " + job.id + ": " + job.name },
      on: {
        click: () => openJob(job.id),
        keydown: (ev) => {
          if (ev.key === "Enter" && ev.target === ev.currentTarget) openJob(job.id);
        },
      },
    },
    el("td", { className: "num mono", text: job.id }),
    el("td", { className: "name", text: job.name, title: job.name }),
    el("td", { className: "client", text: job.client || DASH, title: job.client || "" }),
    el("td", { text: fmt.label(job.task_type) }),
    el("td", {}, statusBadge(job.status)),
    el("td", { className: "num" + (qaLow ? " warn-text" : ""), text: fmt.qa(job.qa_score) }),
    costCell(job),
    priceCell(job),
    el("td", {
      className: "pay pay-" + job.payment_status,
      text: job.payment_status === "na" ? DASH : job.payment_status,
    }),
    el("td", { className: "nowrap", text: fmt.when(job.created_at), title: job.created_at || "" }),
    actions,
  );
}

function renderJobs() {
  const body = $("jobs-body");
  const status = $("jobs-filter").value;
  if (!state.jobs.length) {
    const text = status
      ? "No " + fmt.label(status) + " jobs."
      : "No jobs yet: submit one below, or load demo data with `echopilot demo seed`.";
    body.replaceChildren(placeholderRow(text));
  } else {
    body.replaceChildren(...state.jobs.map(jobRow));
  }
  const more = Boolean(state.nextCursor);
  show($("jobs-more"), more);
  setMsg(
    $("jobs-msg"),
    state.jobs.length ? "Showing " + state.jobs.length + (more ? " (more available)" : "") : "",
  );
}

async function retryJob(id, btn) {
  await runAction(btn, () => api("/api/jobs/" + id + "/retry", { method: "POST" }), {
    busyLabel: "Retrying…",
    success: (job) => "Job " + id + " is " + fmt.label(job.status) + " again.",
  });
  await loadJobs().catch(() => {});
}

export function clearJobs() {
  $("jobs-body").replaceChildren();
  $("jobs-msg").textContent = "";
  state.jobs = [];
  state.nextCursor = null;
}

export function bindJobs() {
  $("jobs-filter").addEventListener("change", () => setJobsFilter($("jobs-filter").value));
  $("jobs-refresh").addEventListener("click", (ev) =>
    runAction(ev.currentTarget, () => loadJobs(), {
      busyLabel: "Refreshing…",
      msgNode: $("jobs-msg"),
      success: () => "Showing " + state.jobs.length + ".",
    }),
  );
  $("jobs-more").addEventListener("click", (ev) =>
    runAction(ev.currentTarget, () => loadJobs({ append: true }), {
      busyLabel: "Loading…",
      msgNode: $("jobs-msg"),
      success: () => "Showing " + state.jobs.length + (state.nextCursor ? " (more available)" : "") + ".",
    }),
  );
  document.addEventListener(JOBS_CHANGED, () => {
    if (state.running) loadJobs().catch(() => {});
  });
}
