/* The payments panel: whether Stripe and its webhook are set up, jobs by payment status,
   money in over 7 and 30 days, disputes, events waiting, the last reconciliation and the
   freshness line (GET /api/payments/status); the jobs that still owe, each with "Mark
   paid" (GET /api/payments?status=owed); and "Reconcile now" when Stripe is on. */
import { DASH, api, button, el, fmt, jobsChanged, panelError, runAction, setMsg } from "./core.js";

const OWED_SHOWN = 20;
const FIGURES = [
  ["received", "Received"],
  ["refunded", "Refunded"],
  ["disputed", "Disputed"],
  ["reinstated", "Reinstated"], // disputes won: shown only when some were
  ["net", "Net"],
];

/** A payment link as an <a> when it is an http(s) URL; anything else as text, or a dash. */
function linkCell(url) {
  if (!url) return el("td", { className: "muted", text: DASH });
  let safe = false;
  try {
    safe = ["http:", "https:"].includes(new URL(url).protocol);
  } catch (_) {
    safe = false;
  }
  if (!safe) return el("td", { className: "muted small", text: url, title: "not an http(s) link" });
  return el(
    "td",
    {},
    el("a", { text: "Pay link", title: url, attrs: { href: url, target: "_blank", rel: "noopener noreferrer" } }),
  );
}

function payStatus(status) {
  return el("span", { className: "pay pay-" + status, text: fmt.label(status) });
}

function configLines(o) {
  const lines = [];
  if (!o.configured) {
    lines.push(
      "Stripe is off: set STRIPE_SECRET_KEY to send payment links and reconcile. Meanwhile, mark jobs paid by hand.",
    );
  } else lines.push("Stripe is on.");
  if (!o.webhook_configured) {
    lines.push("Webhook off: set STRIPE_WEBHOOK_SECRET so payments arrive as they happen.");
  } else lines.push("Webhook on.");
  return lines;
}

function figuresTable(o) {
  const windows = [
    ["7 days", o.paid_7d],
    ["30 days", o.paid_30d],
  ];
  const some = (key) => windows.some(([, w]) => Number(w[key]) !== 0);
  const shown = FIGURES.filter(([key]) => key !== "reinstated" || some(key));
  return el(
    "table",
    { className: "table compact pay-figures" },
    el(
      "thead",
      {},
      el("tr", {}, el("th", { text: "" }), ...windows.map(([label]) => el("th", { className: "num", text: label }))),
    ),
    el(
      "tbody",
      {},
      ...shown.map(([key, label]) =>
        el(
          "tr",
          { data: { figure: key } },
          el("th", { attrs: { scope: "row" }, text: label }),
          ...windows.map(([, w]) => el("td", { className: "num", text: fmt.money(w[key]) })),
        ),
      ),
    ),
  );
}

function reconcileText(o) {
  const r = o.last_reconcile;
  if (!o.configured) return "";
  if (!r) return "Last reconciliation: none yet.";
  const when = "Last reconciliation: " + fmt.when(r.started_at);
  if (!r.ok) return when + ", failed: " + (r.error || "unknown error");
  const counts = [
    fmt.num(r.events_read) + " events read",
    fmt.num(r.events_applied) + " applied",
    fmt.num(r.links_created) + " links made",
  ];
  return when + ", ok (" + counts.join(", ") + ").";
}

export function mountPayments(body) {
  const config = el("ul", { className: "plain-list small pay-config" });
  const counts = el("ul", { className: "plain-list pay-counts" });
  const figures = el("div", { className: "table-wrap" });
  const facts = el("p", { className: "small pay-facts" });
  const reconciled = el("p", { className: "small pay-reconcile" });
  const fresh = el("p", { className: "muted small pay-freshness" });
  const owedHead = el("h3", { className: "small", text: "Still owed" });
  const owedRows = el("tbody", {});
  const owedNote = el("p", { className: "muted small pay-owed-note" });
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });

  const reconcileNow = button(
    "Reconcile now",
    async (ev) => {
      const r = await runAction(ev.currentTarget, () => api("/api/payments/reconcile", { method: "POST" }), {
        msgNode: msg,
        busyLabel: "Reconciling…",
        success: (x) =>
          "Reconciled: " + fmt.num(x.events_read) + " events read, " + fmt.num(x.events_applied) + " applied.",
      });
      if (r) await refresh().catch(() => {});
    },
    "small primary",
  );
  reconcileNow.hidden = true;

  function owedRow(job) {
    const markPaid = button(
      "Mark paid",
      async (ev) => {
        const r = await runAction(
          ev.currentTarget,
          () => api("/api/payments/" + job.id + "/mark-paid", { method: "POST", body: {} }),
          {
            msgNode: msg,
            busyLabel: "Marking…",
            success: (x) => "Job " + x.job_id + " marked paid (" + fmt.money(x.amount) + ").",
          },
        );
        if (!r) return;
        jobsChanged();
        await refresh().catch(() => {});
      },
      "small",
    );
    return el(
      "tr",
      { data: { jobId: job.id, status: job.payment_status } },
      el("td", { className: "name", text: job.name, title: "Job " + job.id + " · " + fmt.label(job.task_type) }),
      el("td", { className: "client", text: job.client || DASH, title: job.client || "" }),
      el("td", {}, payStatus(job.payment_status)),
      el("td", { className: "num", text: fmt.money(job.price) }),
      linkCell(job.payment_link),
      el("td", { className: "small pay-problem", text: job.problem || DASH }),
      el("td", { className: "actions" }, markPaid),
    );
  }

  const owedTable = el(
    "table",
    { className: "table compact pay-owed" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Job", "Client", "Status", "Price", "Link", "Problem", ""].map((t) =>
          el("th", { className: t === "Price" ? "num" : "", attrs: { scope: "col" }, text: t }),
        ),
      ),
    ),
    owedRows,
  );
  body.append(
    el("div", { className: "panel-actions" }, reconcileNow, msg),
    config,
    counts,
    figures,
    facts,
    reconciled,
    fresh,
    owedHead,
    el("div", { className: "table-wrap" }, owedTable),
    owedNote,
  );

  function render(o, owed) {
    config.replaceChildren(...configLines(o).map((t) => el("li", { text: t })));
    reconcileNow.hidden = !o.configured;
    const billed = Object.entries(o.by_status).filter(([, n]) => n > 0);
    counts.replaceChildren(
      ...(billed.length
        ? billed.map(([s, n]) => el("li", { data: { status: s } }, payStatus(s), " " + fmt.num(n)))
        : [el("li", { className: "muted small", text: "No billed jobs yet." })]),
    );
    figures.replaceChildren(figuresTable(o));
    facts.textContent =
      "Owed: " + fmt.money(o.owed.amount) + " on " + fmt.num(o.owed.jobs) + " jobs · " +
      "open disputes: " + fmt.num(o.open_disputes) + " · events waiting for their job: " + fmt.num(o.events_waiting) +
      " · last Stripe event: " + fmt.when(o.last_event_at);
    reconciled.textContent = reconcileText(o);
    reconciled.hidden = !o.configured;
    reconciled.classList.toggle("warn-text", Boolean(o.last_reconcile && !o.last_reconcile.ok));
    fresh.textContent = o.freshness || "";
    fresh.hidden = !o.freshness;
    owedRows.replaceChildren(
      ...(owed.jobs.length
        ? owed.jobs.map(owedRow)
        : [el("tr", {}, el("td", { className: "empty", attrs: { colspan: "7" }, text: "Nothing owed." }))]),
    );
    const total = o.owed.jobs;
    const more = total > owed.jobs.length;
    owedNote.textContent = more ? "Showing the newest " + owed.jobs.length + " of " + fmt.num(total) + "." : "";
  }

  let failed = false; // the message shown is a refresh's error: the next good one clears it
  async function refresh() {
    try {
      const [o, owed] = await Promise.all([
        api("/api/payments/status"),
        api("/api/payments?status=owed&limit=" + OWED_SHOWN),
      ]);
      render(o, owed);
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
