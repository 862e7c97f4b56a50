/* The health badges, the KPI cards of the last 7 days and the attention chips. */
import { $, api, el, fmt, reportable, state } from "./core.js";
import { setJobsFilter } from "./jobs.js";

const STALE_WORKER_S = 120;

/** GET /health and /api/system; keeps the system's features in `state`. */
export async function loadHealth() {
  const [health, system] = await Promise.allSettled([api("/health"), api("/api/system")]);
  const h = health.status === "fulfilled" ? health.value : null;
  const s = system.status === "fulfilled" ? system.value : state.system;
  if (!state.running) return;
  state.health = h;
  if (s) {
    state.system = s;
    state.features = s.features || {};
  }
  renderHealth(h, s);
}

function badge(label, value, tone, detail) {
  return el(
    "div",
    { className: "badge-card tone-" + tone, data: { badge: label.toLowerCase().replace(/\s+/g, "-") } },
    el("span", { className: "dot", attrs: { "aria-hidden": "true" } }),
    el(
      "div",
      { className: "badge-text" },
      el("div", { className: "badge-label", text: label }),
      el("div", { className: "badge-value", text: value }),
      detail ? el("div", { className: "badge-detail", text: detail }) : null,
    ),
  );
}

export function renderHealth(h, s) {
  if (!state.running) return;
  $("health").replaceChildren(
    apiBadge(h),
    databaseBadge(h, s),
    queueBadge(h),
    workerBadge(s),
    schedulerBadge(),
    providerBadge(s),
  );
}

function apiBadge(h) {
  if (!h) return badge("API", "unreachable", "bad", "GET /health failed");
  return badge("API", h.status, h.status === "ok" ? "ok" : "warn", "version " + h.version);
}

function databaseBadge(h, s) {
  const kind = s ? s.database : null;
  if (!h) return badge("Database", "unknown", "neutral", kind);
  return badge("Database", h.db, h.db === "ok" ? "ok" : "bad", kind);
}

function queueBadge(h) {
  if (!h) return badge("Queue", "unknown", "neutral");
  if (!h.queue || !h.queue.ok) return badge("Queue", "unreachable", "bad", "queue storage not answering");
  const depth = h.queue.depth;
  return badge("Queue", fmt.num(depth) + " waiting", depth > 100 ? "warn" : "ok", "messages in the queue");
}

function workerBadge(s) {
  if (!s) return badge("Worker", "unknown", "neutral");
  const workers = s.workers || [];
  if (!workers.length) return badge("Worker", "no worker running", "warn", "start one: echopilot worker");
  const freshest = Math.min(...workers.map((w) => w.heartbeat_age_s));
  const inFlight = workers.reduce((n, w) => n + (w.in_flight || 0), 0);
  const stale = freshest > STALE_WORKER_S;
  const count = workers.length === 1 ? "1 worker" : workers.length + " workers";
  return badge(
    "Worker",
    "heartbeat " + fmt.ago(freshest),
    stale ? "warn" : "ok",
    count + ", " + inFlight + " in flight" + (stale ? " (stale)" : ""),
  );
}

function schedulerBadge() {
  if (!state.features.scheduler) return badge("Scheduler", "scheduler: not available yet", "neutral");
  const a = state.automations;
  if (!a) return badge("Scheduler", "unknown", "neutral", "status not loaded");
  if (a.running && a.paused) return badge("Scheduler", "paused", "warn", schedulerDetail(a));
  if (a.running) return badge("Scheduler", "running", "ok", schedulerDetail(a));
  return badge(
    "Scheduler",
    a.paused ? "stopped, paused" : "stopped",
    "warn",
    "no scheduler running: see Automations",
  );
}

function schedulerDetail(a) {
  const beat =
    a.heartbeat_age_s === null || a.heartbeat_age_s === undefined
      ? ""
      : "heartbeat " + fmt.ago(a.heartbeat_age_s);
  return [a.host ? a.host + (a.pid ? " pid " + a.pid : "") : "", beat].filter(Boolean).join(", ");
}

function providerBadge(s) {
  if (!s) return badge("AI provider", "unknown", "neutral");
  if (s.provider === "offline") {
    return badge("AI provider", "offline: no model", "warn", s.provider_label);
  }
  const models = s.models || {};
  const detail = [models.task, models.qa].filter(Boolean).join(" · ");
  return badge("AI provider", s.provider_label, "ok", detail ? "models: " + detail : null);
}

/* ------------------------------------------------------------------ KPI cards */

const KPIS = [
  {
    key: "jobs_7d",
    label: "Jobs finished",
    show: (d) => fmt.num(d.jobs_7d),
    sub: (d) => fmt.num(d.submitted_7d) + " submitted",
  },
  {
    key: "revenue_7d",
    label: "Revenue",
    show: (d) => fmt.money(d.revenue_7d),
    sub: () => "jobs done, billed",
  },
  {
    key: "cost_7d",
    label: "Model cost",
    show: (d) => fmt.money(d.cost_7d),
    sub: () => "all attempts",
  },
  {
    key: "profit_7d",
    label: "Profit",
    show: (d) => fmt.money(d.profit_7d),
    tone: (d) => (Number(d.profit_7d) < 0 ? "bad" : ""),
    sub: () => "revenue − cost",
  },
  {
    key: "margin_7d_pct",
    label: "Margin",
    show: (d) => fmt.pct(d.margin_7d_pct),
    tone: (d) => (d.margin_7d_pct !== null && Number(d.margin_7d_pct) < 40 ? "warn" : ""),
    sub: () => "profit / revenue",
  },
  {
    key: "avg_qa_7d",
    label: "Average QA",
    show: (d) => fmt.qa(d.avg_qa_7d),
    tone: (d) => (d.avg_qa_7d !== null && d.avg_qa_7d < state.qaThreshold ? "warn" : ""),
    sub: () => "threshold " + state.qaThreshold,
  },
  {
    key: "failure_rate_7d_pct",
    label: "Failure rate",
    show: (d) => fmt.pct(d.failure_rate_7d_pct),
    tone: (d) => (d.failure_rate_7d_pct > 10 ? "bad" : d.failure_rate_7d_pct > 5 ? "warn" : ""),
    sub: () => "dead / finished",
  },
  {
    key: "p95_latency_ms_7d",
    label: "p95 latency",
    show: (d) => fmt.duration(d.p95_latency_ms_7d),
    sub: () => "submit to finish",
  },
];

export async function loadKpis() {
  try {
    const data = await api("/api/metrics-summary");
    if (!state.running) return;
    renderKpis(data);
    renderAttention(data.jobs_by_status || {});
  } catch (err) {
    if (reportable(err)) $("kpi-asof").textContent = "Could not load: " + err.message;
  }
}

function renderKpis(data) {
  $("kpis").replaceChildren(
    ...KPIS.map((k) =>
      el(
        "div",
        {
          className: "kpi card " + (k.tone ? "tone-" + (k.tone(data) || "none") : ""),
          data: { kpi: k.key },
        },
        el("div", { className: "kpi-label", text: k.label }),
        el("div", { className: "kpi-value", text: k.show(data) }),
        el("div", { className: "kpi-sub", text: k.sub(data) }),
      ),
    ),
  );
  $("kpi-asof").textContent = "as of " + fmt.when(data.as_of);
}

/** Chips for the statuses that need a human; clicking one filters the table. */
function renderAttention(byStatus) {
  const chips = ["needs_review", "dead", "failed"]
    .filter((s) => byStatus[s] > 0)
    .map((s) =>
      el("button", {
        type: "button",
        className: "chip status-" + s,
        text: fmt.label(s) + " " + fmt.num(byStatus[s]),
        title: "Show only " + fmt.label(s) + " jobs",
        on: { click: () => setJobsFilter(s) },
      }),
    );
  $("jobs-attention").replaceChildren(...chips);
}
