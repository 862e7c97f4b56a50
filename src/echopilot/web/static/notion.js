/* The Notion panel: the connector's state (on, off or stopped, and why), the last poll,
   pages taken, write-backs pending or being confirmed, and the worst read-after-write lag of
   the last 24 hours (GET /api/notion/status); "Sync now" when the connector is on and
   "Check again" when it is not (POST /api/notion/sync, /api/notion/check). */
import { DASH, api, button, el, fmt, jobsChanged, panelError, runAction, setMsg } from "./core.js";

function stateText(s) {
  if (!s.enabled) return "Off: set NOTION_TOKEN and NOTION_QUEUE_DB_ID to take tasks from a Notion queue.";
  if (s.status === "on") return "On: polling the queue every " + s.poll_every_seconds + " s.";
  return (s.status === "stopped" ? "Stopped: " : "Off: ") + (s.reason || "no reason recorded");
}

function lagText(seconds) {
  return seconds === null || seconds === undefined ? DASH : fmt.num(seconds) + " s";
}

export function mountNotion(body) {
  const line = el("p", { className: "notion-state" });
  const facts = el("dl", { className: "small notion-facts" });
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });

  const syncNow = button(
    "Sync now",
    async (ev) => {
      const r = await runAction(ev.currentTarget, () => api("/api/notion/sync", { method: "POST" }), {
        msgNode: msg,
        busyLabel: "Syncing…",
        success: (x) =>
          "Took " + fmt.num(x.taken) + (x.taken === 1 ? " page" : " pages") + "; wrote " + fmt.num(x.written) + ", Notion showed " +
          fmt.num(x.confirmed) + ".",
      });
      if (!r) return;
      if (r.taken) jobsChanged();
      await refresh().catch(() => {});
    },
    "small primary",
  );
  const checkAgain = button(
    "Check again",
    async (ev) => {
      const r = await runAction(ev.currentTarget, () => api("/api/notion/check", { method: "POST" }), {
        msgNode: msg,
        busyLabel: "Checking…",
        success: (x) => (x.ok ? "The databases are usable: the connector is on." : x.problems.join(" · ")),
      });
      if (r) await refresh().catch(() => {});
    },
    "small",
  );
  body.append(el("div", { className: "panel-actions" }, syncNow, checkAgain, msg), line, facts);

  function fact(label, value, key) {
    return [el("dt", { text: label }), el("dd", { text: value, data: { fact: key } })];
  }

  function render(s) {
    line.textContent = stateText(s);
    line.classList.toggle("warn-text", s.enabled && s.status !== "on");
    syncNow.hidden = !(s.enabled && s.status === "on");
    checkAgain.hidden = !s.enabled;
    facts.hidden = !s.enabled;
    const poll = s.polled_at ? fmt.when(s.polled_at) + (s.poll_error ? " (failed: " + s.poll_error + ")" : "") : "never";
    facts.replaceChildren(
      ...fact("Last poll", poll, "polled"),
      ...fact("Pages taken", fmt.num(s.pages_taken) + " (" + fmt.num(s.pages_taken_24h) + " in 24 h)", "taken"),
      ...fact(
        "Write-backs pending",
        fmt.num(s.pending_writes) + (s.verifying_writes ? " · " + fmt.num(s.verifying_writes) + " being confirmed" : ""),
        "pending",
      ),
      ...fact("Worst lag (24 h)", lagText(s.worst_lag_seconds_24h), "lag"),
    );
  }

  let failed = false;
  async function refresh() {
    try {
      render(await api("/api/notion/status"));
      if (failed) setMsg(msg, "");
      failed = false;
    } catch (err) {
      failed = true;
      panelError(msg, err);
      throw err;
    }
  }
  setMsg(msg, "");
  return refresh;
}
