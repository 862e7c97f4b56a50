/* The price optimiser panel: the latest proposal per task type (old -> new rate, decision,
   reason, what the last 30 days would have earned at the new rate) and "Dry run now". */
import { DASH, api, button, el, fmt, panelError, runAction, setMsg } from "./core.js";

const REFRESH_EVERY_MS = 60000;
// Decisions in the colours of the job statuses: a rise blue, a hold grey, a quality hold amber.
const DECISION_STATUS = { raise: "queued", modest_raise: "queued", hold: "cancelled", quality_hold: "failed" };

/** A rate ("25.000000") as $25.00, keeping the digits past the cent a rate may have ($1.224). */
function rate(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return Math.round(n * 100) / 100 === n ? fmt.money(n) : "$" + String(n);
}

/** "1 price change proposed", "3 price changes proposed" (shared with the Operations panel). */
export function changesProposed(result) {
  const n = result.proposals.filter((p) => p.new_rate_usd !== p.old_rate_usd).length;
  return n + (n === 1 ? " price change" : " price changes") + " proposed";
}

function signedMoney(value) {
  const n = Number(value);
  return (n > 0 ? "+" : "") + fmt.money(value);
}

function proposalRow(p) {
  const changed = p.new_rate_usd !== p.old_rate_usd;
  const window = p.last_30d;
  return el(
    "tr",
    { data: { taskType: p.task_type, decision: p.decision } },
    el("td", { className: "name", text: fmt.label(p.task_type), title: p.unit }),
    el(
      "td",
      { className: "num rate" },
      changed ? rate(p.old_rate_usd) + " → " + rate(p.new_rate_usd) : rate(p.old_rate_usd),
      el("div", { className: "muted small", text: changed ? "+" + p.change_pct + "%" : fmt.label(p.unit) }),
    ),
    el(
      "td",
      {},
      el("span", {
        className: "status status-" + (DECISION_STATUS[p.decision] || "cancelled"),
        text: fmt.label(p.decision),
      }),
    ),
    el("td", { className: "reason small", text: p.reason }),
    el(
      "td",
      { className: "num effect" },
      changed ? signedMoney(window.difference_usd) : DASH,
      el("div", {
        className: "muted small",
        text:
          window.jobs +
          " jobs · " +
          fmt.money(window.billed_usd) +
          (changed ? " → " + fmt.money(window.at_new_rate_usd) : ""),
      }),
    ),
  );
}

function heading(result, manual) {
  if (!result.ran_at) return "No proposal yet.";
  const when = fmt.when(result.ran_at);
  if (manual) return "Dry run of " + when + ": nothing changed.";
  if (!result.dry_run) return "Applied " + when + (result.applied.length ? ": " + result.applied.join(", ") : "") + ".";
  return (result.trigger === "manual" ? "Proposal of " : "Weekly proposal of ") + when + " (not applied).";
}

export function mountOptimizer(body) {
  const head = el("p", { className: "optimizer-head", text: "Loading…" });
  const rows = el("tbody", {});
  const table = el(
    "table",
    { className: "table compact optimizer-table" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Type", "Rate", "Decision", "Reason", "Last 30 days"].map((t, i) =>
          el("th", { className: i === 1 || i === 4 ? "num" : "", attrs: { scope: "col" }, text: t }),
        ),
      ),
    ),
    rows,
  );
  const notes = el("ul", { className: "plain-list muted small optimizer-notes" });
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  let shownAt = null; // ran_at of what is shown: a later scheduled run replaces it, an older never

  function render(result, manual) {
    head.textContent = heading(result, manual);
    rows.replaceChildren(...result.proposals.map(proposalRow));
    table.hidden = !result.proposals.length;
    notes.replaceChildren(...result.notes.map((n) => el("li", { text: n })));
    shownAt = result.ran_at ? Date.parse(result.ran_at) : null;
  }

  const dryRun = button(
    "Dry run now",
    async (ev) => {
      const result = await runAction(
        ev.currentTarget,
        () => api("/api/optimizer/run?dry_run=true", { method: "POST" }),
        {
          msgNode: msg,
          success: (r) => changesProposed(r) + ".",
        },
      );
      if (result) render(result, true);
    },
    "small primary",
  );
  body.append(
    el("div", { className: "panel-actions" }, dryRun, msg),
    head,
    el("div", { className: "table-wrap" }, table),
    notes,
  );

  // The proposal changes weekly: one look a minute is plenty, and spares the API a request
  // on every live tick (and the second one panels get when they are mounted).
  let fetchedAt = 0;
  async function refresh() {
    if (Date.now() - fetchedAt < REFRESH_EVERY_MS) return;
    fetchedAt = Date.now();
    try {
      const latest = await api("/api/optimizer/latest");
      const at = latest.ran_at ? Date.parse(latest.ran_at) : null;
      if (shownAt === null || (at !== null && at > shownAt)) render(latest, false);
    } catch (err) {
      fetchedAt = 0; // try again at the next tick
      panelError(msg, err);
      throw err;
    }
  }
  setMsg(msg, "");
  return refresh;
}
