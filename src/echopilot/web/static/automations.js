/*
 * The automations panel: the scheduler's state with Start, Stop and Status, and one row per
 * scheduled task with its schedule, next run, last run (and what it did) and "Run now".
 *
 * Four columns, so that the table fits its half-width card at common desktop widths; on a
 * narrow card each task becomes a stacked block (dashboard.css, container query).
 */
import {
  DASH,
  api,
  button,
  el,
  fmt,
  panelError,
  runAction,
  safely,
  state,
  statusBadge,
  summarize,
} from "./core.js";
import { renderHealth } from "./health.js";
import { OPERATIONS } from "./operations.js";

export function mountAutomations(body) {
  const summary = el("p", { className: "auto-summary muted", text: "Loading…" });
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  const table = el("div", { className: "schedule-wrap" });
  // start/stop answer {action, status}: show the action, render the status they return.
  const control = (path) => async (ev) => {
    const result = await runAction(ev.currentTarget, () => api(path, { method: "POST" }), {
      msgNode: msg,
      success: (r) => "Scheduler: " + ((r && r.action) || "done") + ".",
    });
    if (result && result.status) showStatus(result.status);
  };
  const controls = el(
    "div",
    { className: "panel-actions" },
    button("Start", control("/api/automations/start"), "small primary"),
    button("Stop", control("/api/automations/stop"), "small"),
    button(
      "Status",
      (ev) => runAction(ev.currentTarget, refresh, { msgNode: msg, success: () => "Status refreshed." }),
      "small ghost",
    ),
    msg,
  );
  body.append(summary, controls, table);

  function showStatus(status) {
    state.automations = status;
    summary.textContent = automationsSummary(status);
    summary.className = "auto-summary " + (status.running && !status.paused ? "ok-text" : "warn-text");
    table.replaceChildren(scheduleTable(status.schedule || [], msg, refresh));
    renderHealth(state.health, state.system); // the scheduler badge reads state.automations
  }

  async function refresh() {
    try {
      const status = await api("/api/automations/status");
      showStatus(status);
      return status;
    } catch (err) {
      panelError(msg, err);
      throw err;
    }
  }
  return refresh;
}

function automationsSummary(s) {
  if (!s.running) {
    return s.paused
      ? "Stopped and paused: no scheduler is running, and Start is needed before tasks run again."
      : "Stopped: no scheduler is running, so scheduled tasks do not run.";
  }
  const where = [s.host, s.pid ? "pid " + s.pid : ""].filter(Boolean).join(", ");
  const count = s.instances && s.instances.length > 1 ? "; " + s.instances.length + " schedulers" : "";
  const beat =
    s.heartbeat_age_s === null || s.heartbeat_age_s === undefined
      ? ""
      : "; heartbeat " + fmt.ago(s.heartbeat_age_s);
  const mode = s.paused ? "Paused: tasks wait until Start" : "Running";
  return mode + (where ? " (" + where + ")" : "") + count + beat + ".";
}

function runOutcome(task, run) {
  const took =
    run.duration_ms === null || run.duration_ms === undefined ? "" : " in " + fmt.duration(run.duration_ms);
  const what = run.error
    ? " (" + run.error + ")"
    : run.summary
      ? ": " + describeSummary(task, run.summary)
      : "";
  return task + ": " + fmt.label(run.status || "started") + took + what + ".";
}

/** A task's run summary in words: the matching operation's summary when there is one. */
function describeSummary(task, summary) {
  if (!summary) return DASH;
  const op = OPERATIONS.find((o) => o.feature === task);
  return op && op.summary ? safely(() => op.summary(summary), summarize(summary)) : summarize(summary);
}

/** A labelled line of a cell; a `stackOnly` label shows only when rows are stacked. */
function line(label, value, className, stackOnly) {
  return el(
    "div",
    { className: "cell-line " + (className || "") },
    el("span", { className: stackOnly ? "stack-label" : "cell-label", text: label + " " }),
    value,
  );
}

function lastRunCell(last) {
  if (!last) {
    return el(
      "td",
      { className: "last-run" },
      line("Last run:", el("span", { className: "muted", text: "never" }), "", true),
    );
  }
  const when = fmt.when(last.finished_at || last.started_at);
  const how = last.trigger && last.trigger !== "schedule" ? " · " + last.trigger : "";
  const result = last.error || last.note || describeSummary(last.task, last.summary);
  return el(
    "td",
    { className: "last-run" },
    line(
      "Last run:",
      el(
        "span",
        {},
        statusBadge(last.status),
        " ",
        el("span", { className: "muted small", text: when + how }),
      ),
      "",
      true,
    ),
    result && result !== DASH
      ? el("div", { className: "summary-cell" + (last.error ? " error-text" : ""), text: result })
      : null,
  );
}

function scheduleTable(schedule, msg, refresh) {
  if (!schedule.length) return el("p", { className: "muted", text: "No scheduled tasks." });
  const head = el(
    "tr",
    {},
    ...["Task", "Schedule", "Last run and result"].map((t) => el("th", { text: t, attrs: { scope: "col" } })),
    el("th", { attrs: { scope: "col" } }, el("span", { className: "visually-hidden", text: "Actions" })),
  );
  const rows = schedule.map((t) => {
    const last = t.last_run ? Object.assign({ task: t.task }, t.last_run) : null;
    const run = button(
      "Run now",
      async (ev) => {
        const r = await runAction(
          ev.currentTarget,
          () => api("/api/automations/run/" + encodeURIComponent(t.task), { method: "POST" }),
          {
            busyLabel: "Running…",
            busyText: "Running " + t.task + "…",
            msgNode: msg,
            success: (done) => runOutcome(t.task, done || {}),
          },
        );
        if (r !== undefined) refresh().catch(() => {});
      },
      "small",
    );
    return el(
      "tr",
      { data: { task: t.task } },
      el(
        "td",
        { className: "task" },
        el("div", { className: "mono task-name", text: t.task }),
        t.description ? el("div", { className: "muted small", text: t.description }) : null,
      ),
      el(
        "td",
        { className: "when" },
        el("div", { className: "schedule-text", text: t.schedule || DASH }),
        line(
          "next",
          el("span", { className: "nowrap", text: fmt.when(t.next_run), title: t.next_run || "" }),
          "muted small",
        ),
      ),
      lastRunCell(last),
      el("td", { className: "actions" }, run),
    );
  });
  return el(
    "table",
    { className: "table compact schedule" },
    el("thead", {}, head),
    el("tbody", {}, ...rows),
  );
}
