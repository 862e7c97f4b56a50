/* The alerts panel: open alerts (severity, age), recent history, silences, "check now". */
import { DASH, api, button, el, fmt, panelError, runAction, setMsg } from "./core.js";

// Severity in the colours of the job statuses: red, amber, blue; resolved is green.
const SEVERITY_STATUS = { critical: "dead", high: "dead", warning: "failed", info: "queued" };

function alertRow(alert) {
  const open = alert.status === "open";
  return el(
    "li",
    { className: "alert-item", data: { key: alert.key, status: alert.status } },
    el("span", {
      className: "status status-" + (open ? SEVERITY_STATUS[alert.severity] || "queued" : "done"),
      text: open ? alert.severity : "resolved",
    }),
    " ",
    el("strong", { text: alert.title }),
    el("div", {
      className: "muted small",
      text: open
        ? "open " + fmt.duration(alert.age_s * 1000) + (alert.last_sent_at ? "" : " · not sent yet")
        : "resolved " + fmt.when(alert.resolved_at) + " after " + fmt.duration(alert.age_s * 1000),
    }),
  );
}

function silenceRow(silence) {
  return el(
    "li",
    { className: "muted small", data: { rule: silence.rule } },
    "Silenced: " + fmt.label(silence.rule) + " until " + fmt.when(silence.until),
    silence.reason ? " (" + silence.reason + ")" : "",
  );
}

export function mountAlerts(body) {
  const openList = el("ul", { className: "plain-list alerts-open" });
  const recentList = el("ul", { className: "plain-list alerts-recent" });
  const silenceList = el("ul", { className: "plain-list alerts-silences" });
  const target = el("p", { className: "muted small alerts-target" });
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  const checkNow = button(
    "Check now",
    async (ev) => {
      await runAction(ev.currentTarget, () => api("/api/alerts/trigger", { method: "POST" }), {
        msgNode: msg,
        success: (r) =>
          r.firing.length + " firing, " + r.opened.length + " opened, " + r.resolved.length + " resolved.",
      });
      await refresh().catch(() => {});
    },
    "small primary",
  );
  body.append(
    el("h3", { className: "small", text: "Open" }),
    openList,
    el("h3", { className: "small", text: "Last 7 days" }),
    recentList,
    silenceList,
    target,
    el("div", { className: "panel-actions" }, checkNow, msg),
  );

  async function refresh() {
    try {
      const data = await api("/api/alerts?limit=10");
      openList.replaceChildren(
        ...(data.open.length
          ? data.open.map(alertRow)
          : [el("li", { className: "muted", text: "No open alerts." })]),
      );
      recentList.replaceChildren(
        ...(data.recent.length
          ? data.recent.map(alertRow)
          : [el("li", { className: "muted", text: "Nothing resolved lately." })]),
      );
      silenceList.replaceChildren(...data.silences.map(silenceRow));
      target.textContent =
        (data.channels.length ? "Sent to: " + data.channels.join(", ") : "No channel set: alerts go to the log only") +
        ". Last check: " +
        (data.last_check_at ? fmt.when(data.last_check_at) : DASH) +
        "." +
        (data.channel_problems.length ? " Not used: " + data.channel_problems.join("; ") : "");
      setMsg(msg, "");
    } catch (err) {
      panelError(msg, err);
      throw err;
    }
  }
  return refresh;
}
