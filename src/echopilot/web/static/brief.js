/* The CEO brief panel: the newest brief (GET /api/exec/report-latest) with its headline in
   the colour of its worst risk, the summary and which narrative wrote it, the 7-day KPIs,
   the data's freshness, the top risks (evidence and suggested fix), the actions of the next
   24 hours and 7 days, the confidence, the email's state and the brief's HTML and Markdown
   files (fetched with the key, opened or saved from a Blob URL); "Generate brief" makes a
   new one (POST /api/exec/brief). */
import { DASH, api, button, el, fmt, keyHeaders, panelError, runAction, setMsg } from "./core.js";

const SEVERITIES = ["high", "medium", "low"];
// Severity in the colours of the job statuses, as the alerts panel shows it.
const SEVERITY_STATUS = { high: "dead", medium: "failed", low: "queued" };
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
const MONEY_KEY = /(^|_)(revenue|cost|profit|owed)(_|$)/; // USD amounts in the evidence
const decimal2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const KPIS = [
  ["revenue", "Revenue 7d", fmt.money],
  ["profit", "Profit 7d", fmt.money],
  ["margin_pct", "Margin 7d", fmt.pct],
  ["roi", "ROI 7d", (v) => (v === null || v === undefined ? DASH : decimal2.format(Number(v)))],
  ["avg_qa", "Avg QA 7d", fmt.qa],
  ["jobs", "Jobs 7d", fmt.num],
];
const EMAIL = {
  sent: (e) => "Emailed to " + ((e.to || []).join(", ") || DASH) + " " + fmt.when(e.sent_at) + ".",
  sending: () => "Email being sent…",
  failed: (e) => "Email failed" + (e.error ? ": " + e.error : "."),
  not_configured: (e) => "Not emailed: " + (e.error || "mail is not configured."),
  not_sent: () => "Not emailed yet.",
};

/** The worst severity with a risk, or "ok". */
function worst(b) {
  const c = b.counts || {};
  const risks = b.top_risks || [];
  return SEVERITIES.find((s) => c[s] > 0 || risks.some((r) => r.severity === s)) || "ok";
}

/** One evidence value as short text: job ids as #id, lists joined, times readable. */
function evidenceText(key, value) {
  if (value === null || value === undefined || value === "") return DASH;
  if (Array.isArray(value)) {
    if (!value.length) return DASH;
    if (/(^|_)job_ids$/.test(key)) return value.map((id) => "#" + id).join(", ");
    const objects = value[0] !== null && typeof value[0] === "object";
    return value.map((v) => evidenceText("", v)).join(objects ? "; " : ", ");
  }
  if (typeof value === "object") {
    // {day, revenue} reads "day: revenue"; more fields follow, comma-separated.
    const parts = Object.entries(value).map(([k, v]) => evidenceText(k, v));
    return parts[0] + (parts.length > 1 ? ": " + parts.slice(1).join(", ") : "");
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (/(^|_)job_id$/.test(key)) return "#" + value;
  if (typeof value === "string" && ISO_TIME.test(value)) return fmt.when(value);
  if (MONEY_KEY.test(key) && Number.isFinite(Number(value))) return fmt.money(value);
  if (typeof value === "number" && /_ms($|_)/.test(key)) return fmt.duration(value);
  if (typeof value === "number" && /_s$/.test(key)) return fmt.duration(value * 1000);
  return String(value);
}

function riskItem(r) {
  const evidence = Object.entries(r.evidence || {});
  return el(
    "li",
    { className: "brief-risk", data: { rule: r.rule, severity: r.severity } },
    el(
      "div",
      { className: "brief-risk-head" },
      el("span", {
        className: "status brief-sev status-" + (SEVERITY_STATUS[r.severity] || "cancelled"),
        text: r.severity,
      }),
      " ",
      el("strong", { className: "brief-risk-title", text: r.title }),
    ),
    el("div", {
      className: "muted small",
      text: [r.domain, r.signal, r.type === "statistical" ? "statistical" : null].filter(Boolean).join(" · "),
    }),
    evidence.length
      ? el(
          "dl",
          { className: "brief-evidence" },
          ...evidence.map(([k, v]) =>
            el(
              "div",
              { data: { key: k } },
              el("dt", { text: fmt.fieldLabel(k) }),
              el("dd", { text: evidenceText(k, v) }),
            ),
          ),
        )
      : null,
    r.suggested_fix
      ? el(
          "details",
          { className: "brief-fix" },
          el("summary", { text: "Suggested fix" }),
          el("p", { className: "small", text: r.suggested_fix }),
        )
      : null,
  );
}

function eta(hours) {
  if (hours === null || hours === undefined) return "";
  return "ETA " + (hours < 48 ? hours + " h" : Math.round(hours / 24) + " d");
}

function actionList(title, name, items) {
  const list = items || [];
  return el(
    "div",
    { className: "brief-actions", data: { window: name } },
    el("h3", { className: "small", text: title }),
    el(
      "ul",
      { className: "plain-list" },
      ...(list.length
        ? list.map((a) =>
            el(
              "li",
              { data: { action: a.id || "" } },
              el("span", { className: "brief-priority", text: a.priority || DASH }),
              " ",
              el("span", { className: "brief-task", text: a.task }),
              el("div", {
                className: "muted small brief-owner",
                text: [a.owner, eta(a.eta_hours)].filter(Boolean).join(" · "),
              }),
            ),
          )
        : [el("li", { className: "muted small", text: "Nothing for this window." })]),
    ),
  );
}

function kpiCards(k) {
  const week = (k && k["7d"]) || {};
  const cards = KPIS.map(([key, label, show]) => [key, label, show(week[key]), null]);
  cards.push(["owed", "Owed", fmt.money(k && k.owed), k ? "on " + fmt.num(k.owed_jobs) + " jobs" : null]);
  return el(
    "div",
    { className: "brief-kpis" },
    ...cards.map(([key, label, value, sub]) =>
      el(
        "div",
        { className: "brief-kpi", data: { briefKpi: key } },
        el("div", { className: "brief-kpi-label", text: label }),
        el("div", { className: "brief-kpi-value", text: value }),
        sub ? el("div", { className: "brief-kpi-sub", text: sub }) : null,
      ),
    ),
  );
}

/** Which narrative wrote the summary (a model's or the deterministic one), and the provider. */
function narrativeText(b) {
  const n = b.narrative;
  const parts = [];
  if (n && n.source === "model") parts.push("Narrative by the model" + (n.model ? " " + n.model : ""));
  else if (n) parts.push("Deterministic narrative" + (n.reason ? " (" + n.reason + ")" : ""));
  if (b.provider) parts.push("provider: " + b.provider);
  return parts.join(" · ");
}

function riskCount(b) {
  const c = b.counts || {};
  const total = c.total !== undefined ? c.total : (b.top_risks || []).length;
  if (!total) return "No risks found.";
  const by = SEVERITIES.filter((s) => c[s]).map((s) => c[s] + " " + s);
  const more = b.other_risks ? " · " + b.other_risks + " more not shown" : "";
  return total + (total === 1 ? " risk" : " risks") + (by.length ? ": " + by.join(", ") : "") + more;
}

function confidence(c) {
  if (!c) return null;
  const score = Number.isFinite(Number(c.score)) ? " (" + Number(c.score).toFixed(2) + ")" : "";
  return el(
    "div",
    { className: "brief-confidence" },
    el("p", { className: "small", text: "Confidence: " + (c.level || DASH) + score }),
    el("ul", { className: "muted small brief-notes" }, ...(c.notes || []).map((n) => el("li", { text: n }))),
  );
}

/** A brief's file, fetched with the key (a plain link cannot send it). */
async function fetchFile(stamp, kind) {
  const path = "/api/exec/briefs/" + encodeURIComponent(stamp) + "/" + kind;
  const headers = { ...keyHeaders(path), Accept: kind === "html" ? "text/html" : "text/markdown" };
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store", credentials: "same-origin" });
  } catch (_) {
    throw new Error("cannot reach the EchoPilot server");
  }
  if (response.ok) return response.blob();
  let message = response.status + " " + (response.statusText || "error");
  try {
    message = (await response.json()).error.message || message;
  } catch (_) {
    /* not an envelope: the status says it */
  }
  // A plain Error: runAction shows it, a refused key included.
  throw new Error(response.status === 401 ? "The key was not accepted: sign in again." : message);
}

/** Open (or, with a file name, save) a Blob through a short-lived object URL. */
function openBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { attrs: { href: url, rel: "noopener" } });
  if (filename) link.download = filename;
  else link.target = "_blank";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function mountBrief(body) {
  const content = el("div", { className: "brief" }, el("p", { className: "muted", text: "Loading…" }));
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  let shown = null; // {stamp, key}: a refresh re-renders only a newer or changed brief

  function fileButton(label, kind, stamp) {
    return button(
      label,
      (ev) =>
        runAction(ev.currentTarget, () => fetchFile(stamp, kind), {
          msgNode: msg,
          busyLabel: "Fetching…",
          success: (blob) => {
            openBlob(blob, kind === "md" ? "brief_" + stamp + ".md" : null);
            return kind === "md" ? "Markdown saved." : "HTML opened in a new tab.";
          },
        }),
      "small",
    );
  }

  function render(b) {
    const email = b.email || {};
    const key = [b.stamp, email.status, email.sent_at, email.error].join("|");
    if (shown && (b.stamp < shown.stamp || key === shown.key)) return;
    shown = { stamp: b.stamp, key, status: email.status };
    const sev = worst(b);
    const narrative = narrativeText(b);
    const fresh = b.freshness || {};
    const late = (fresh.late || []).length > 0;
    content.dataset.stamp = b.stamp;
    content.replaceChildren(
      ...[
        el("p", {
          className: "brief-headline brief-sev-" + sev,
          data: { severity: sev },
          text: b.headline || DASH,
        }),
        el("p", {
          className: "muted small brief-meta",
          text: "Brief " + b.stamp + ", generated " + fmt.when(b.generated_at),
        }),
        b.summary ? el("p", { className: "brief-summary", text: b.summary }) : null,
        narrative ? el("p", { className: "muted small brief-narrative", text: narrative }) : null,
        kpiCards(b.kpis),
        fresh.line
          ? el("p", {
              className: "small brief-freshness" + (late ? " warn-text is-late" : " muted"),
              text: fresh.line,
            })
          : null,
        el("h3", { className: "small", text: "Top risks" }),
        el("p", { className: "muted small brief-counts", text: riskCount(b) }),
        el("ul", { className: "plain-list brief-risks" }, ...(b.top_risks || []).map(riskItem)),
        actionList("Next 24 hours", "24h", b.actions_next_24h),
        actionList("Next 7 days", "7d", b.actions_next_7d),
        confidence(b.confidence),
        email.status
          ? el("p", {
              className: "small brief-email" + (email.status === "failed" ? " warn-text" : " muted"),
              text: (EMAIL[email.status] || (() => "Email: " + fmt.label(email.status)))(email),
            })
          : null,
        el(
          "div",
          { className: "panel-actions brief-files" },
          fileButton("Open HTML", "html", b.stamp),
          fileButton("Markdown", "md", b.stamp),
        ),
      ].filter(Boolean),
    );
  }

  const generate = button(
    "Generate brief",
    async (ev) => {
      const brief = await runAction(ev.currentTarget, () => api("/api/exec/brief", { method: "POST" }), {
        busyLabel: "Generating…",
        msgNode: msg,
        success: () => "Brief generated.",
      });
      if (brief) render(brief);
    },
    "small primary",
  );
  body.append(el("div", { className: "panel-actions" }, generate, msg), content);

  function none() {
    if (shown) return; // a brief made meanwhile (by "Generate brief") stays
    content.replaceChildren(el("p", { className: "muted brief-none", text: "No brief yet: generate one." }));
  }

  let failed = false; // the message shown is a refresh's error: the next good one clears it
  async function refresh() {
    try {
      // The listing is cheap and empty (not a 404) before the first brief: the whole
      // brief is fetched only when a newer one exists or its email state changed.
      const { briefs } = await api("/api/exec/briefs?limit=1");
      const newest = briefs && briefs[0];
      if (!newest) none();
      else if (!shown || newest.stamp !== shown.stamp || newest.email_status !== shown.status) {
        const brief = await api("/api/exec/report-latest");
        if (brief) render(brief);
      }
    } catch (err) {
      failed = true;
      panelError(msg, err);
      throw err;
    }
    if (failed) setMsg(msg, "");
    failed = false;
  }
  setMsg(msg, "");
  return refresh;
}
