/* The daily report panel: the newest report's summary line, its day and data cut-off,
   the sources that were late, and "Run now" (yesterday's report; a second run replaces
   that day's files). */
import { api, button, el, fmt, panelError, runAction, setMsg } from "./core.js";

function metaText(r) {
  return (
    "Day " +
    r.date +
    " (UTC)" +
    (r.day_complete === false ? ", not over yet" : "") +
    " · data cut-off " +
    fmt.when(r.cutoff)
  );
}

export function mountReports(body) {
  const summary = el("p", { className: "brief-headline report-summary", text: "Loading…" });
  const meta = el("p", { className: "muted small report-meta" });
  const late = el("ul", { className: "plain-list muted small report-late" });
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  let shownDate = null; // the day shown: a refresh shows a newer day, never an older one

  function render(r) {
    summary.textContent = r.summary_line;
    summary.dataset.date = r.date;
    meta.textContent = metaText(r);
    late.replaceChildren(...(r.late_sources || []).map((s) => el("li", { text: "Late: " + s.detail })));
    shownDate = r.date;
  }

  const runNow = button(
    "Run now",
    async (ev) => {
      const result = await runAction(ev.currentTarget, () => api("/api/reports/daily", { method: "POST" }), {
        msgNode: msg,
        busyLabel: "Running…",
        success: (r) => "Report for " + r.date + (r.replaced ? " written again." : " written."),
      });
      if (result) render(result);
    },
    "small primary",
  );
  body.append(el("div", { className: "panel-actions" }, runNow, msg), summary, meta, late);

  async function refresh() {
    try {
      const data = await api("/api/reports/daily?limit=1");
      const newest = data.reports[0];
      if (!newest) {
        if (shownDate === null) summary.textContent = "No daily report yet: run one.";
        return;
      }
      if (shownDate === null || newest.date >= shownDate) render(newest);
    } catch (err) {
      panelError(msg, err);
      throw err;
    }
  }
  setMsg(msg, "");
  return refresh;
}
