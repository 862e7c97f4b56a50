/*
 * EchoPilot operations dashboard.
 *
 * Plain JavaScript in one IIFE; the only global is the `EchoPilot` namespace at the end.
 * The page's Content-Security-Policy forbids inline scripts and eval, so every handler is
 * bound here with addEventListener, and data only ever reaches the page through
 * textContent (never innerHTML).
 *
 * The dashboard key lives in sessionStorage and is sent as X-Dash-Key on /api/ requests
 * only. It is never written into the DOM, a URL or the console.
 */
(function () {
  "use strict";

  const KEY_STORE = "echopilot.dashKey";
  const LIVE_EVERY_MS = 10000; // health, KPIs, jobs, live panels
  const CHARTS_EVERY_MS = 60000;
  const PAGE_SIZE = 50;
  const MAX_PAGE = 500;
  const STALE_WORKER_S = 120;
  const STATUSES = ["queued", "processing", "done", "needs_review", "failed", "dead", "cancelled"];
  const RETRYABLE = new Set(["failed", "dead", "needs_review", "cancelled"]);
  const CANCELLABLE = new Set(["queued", "processing", "failed"]);
  const PLOT_CONFIG = { displayModeBar: false, responsive: true };

  const state = {
    features: {},
    featuresSeen: null,
    health: null,
    system: null,
    qaThreshold: 80,
    jobs: [],
    nextCursor: null,
    jobsSeq: 0,
    automations: null,
    timers: [],
    panels: {},
    running: false,
  };

  /* ------------------------------------------------------------------ DOM helpers */

  function $(id) {
    return document.getElementById(id);
  }

  /** el("td", {className, text, title, attrs, data, on}, ...children) */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    const p = props || {};
    if (p.className) node.className = p.className;
    if (p.text !== undefined && p.text !== null) node.textContent = String(p.text);
    if (p.title) node.title = p.title;
    if (p.type) node.type = p.type;
    Object.entries(p.attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    Object.entries(p.data || {}).forEach(([k, v]) => (node.dataset[k] = v));
    Object.entries(p.on || {}).forEach(([ev, fn]) => node.addEventListener(ev, fn));
    children.flat().forEach((c) => {
      if (c === null || c === undefined || c === false) return;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    });
    return node;
  }

  function button(label, onClick, className) {
    return el("button", {
      type: "button",
      className: "btn " + (className || ""),
      text: label,
      on: { click: onClick },
    });
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  /* ------------------------------------------------------------------ formatting */

  const DASH = "—";
  const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  // Model costs under $1 get a fixed 4 decimals (so a column lines up), 6 under $0.0001.
  const usdFine = new Intl.NumberFormat("en-US", {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: 4,
    maximumFractionDigits: 4,
  });
  const usdMicro = new Intl.NumberFormat("en-US", {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: 6,
    maximumFractionDigits: 6,
  });
  const integer = new Intl.NumberFormat("en-US");

  const fmt = {
    /** USD from a decimal string; `fine` shows more decimals under $1 (model costs). */
    money(value, fine) {
      if (value === null || value === undefined || value === "") return DASH;
      const n = Number(value);
      if (!Number.isFinite(n)) return String(value);
      if (fine && Math.abs(n) < 1 && n !== 0) {
        return (Math.abs(n) < 0.0001 ? usdMicro : usdFine).format(n);
      }
      return usd.format(n);
    },
    num(value) {
      return value === null || value === undefined ? DASH : integer.format(value);
    },
    pct(value) {
      return value === null || value === undefined ? DASH : Number(value).toFixed(1) + "%";
    },
    qa(value) {
      return value === null || value === undefined ? DASH : Number(value).toFixed(1);
    },
    duration(ms) {
      if (ms === null || ms === undefined) return DASH;
      if (ms < 1000) return Math.round(ms) + " ms";
      const s = ms / 1000;
      if (s < 60) return s.toFixed(1) + " s";
      const m = Math.floor(s / 60);
      if (m < 60) return m + " min " + Math.round(s % 60) + " s";
      return Math.floor(m / 60) + " h " + (m % 60) + " min";
    },
    bytes(n) {
      if (n === null || n === undefined) return DASH;
      const units = ["B", "KB", "MB", "GB"];
      let i = 0;
      let v = Number(n);
      while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i += 1;
      }
      return (i ? v.toFixed(1) : String(v)) + " " + units[i];
    },
    ago(seconds) {
      if (seconds === null || seconds === undefined) return DASH;
      if (seconds < 60) return Math.round(seconds) + " s ago";
      if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
      if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h ago";
      return Math.round(seconds / 86400) + " d ago";
    },
    when(iso) {
      if (!iso) return DASH;
      const d = new Date(iso);
      if (Number.isNaN(d.getTime())) return String(iso);
      return d.toLocaleString(undefined, {
        month: "short",
        day: "numeric",
        hour: "2-digit",
        minute: "2-digit",
      });
    },
    label(key) {
      return String(key).replace(/_/g, " ");
    },
    /** A field's name for people: the unit suffix goes, since values are formatted. */
    fieldLabel(key) {
      return fmt.label(String(key).replace(/_(usd|ms|s)$/, ""));
    },
    /** Any API value as short text, for generic key/value views. */
    any(key, value) {
      if (value === null || value === undefined || value === "") return DASH;
      if (/_usd$/.test(key)) return fmt.money(value, true);
      if (/_at$/.test(key) || key === "next_run") return fmt.when(value);
      if (/_ms$/.test(key)) return fmt.duration(value);
      if (/_s$/.test(key) && typeof value === "number") return fmt.duration(value * 1000);
      if (Array.isArray(value)) return value.length ? value.map((v) => fmt.any("", v)).join(", ") : DASH;
      if (typeof value === "object") return JSON.stringify(value);
      return String(value);
    },
  };

  /* ------------------------------------------------------------------ key storage */

  const auth = {
    get() {
      try {
        return sessionStorage.getItem(KEY_STORE);
      } catch (_) {
        return null;
      }
    },
    set(key) {
      sessionStorage.setItem(KEY_STORE, key);
    },
    clear() {
      try {
        sessionStorage.removeItem(KEY_STORE);
      } catch (_) {
        /* storage disabled: nothing kept */
      }
    },
  };

  /* ------------------------------------------------------------------ API */

  class ApiError extends Error {
    constructor(message, status, code, fields) {
      super(message);
      this.status = status;
      this.code = code || "error";
      this.fields = fields || [];
    }
  }

  /**
   * fetch() a JSON envelope; resolve to `data` or reject with ApiError(error.message).
   * opts.key checks a candidate key (the login form) instead of the stored one.
   */
  async function api(path, opts) {
    const o = opts || {};
    const headers = { Accept: "application/json" };
    const isApi = path.startsWith("/api/");
    if (isApi) {
      const key = o.key || auth.get();
      if (!key) throw new ApiError("signed out", 401, "signed_out");
      headers["X-Dash-Key"] = key;
    }
    const init = { method: o.method || "GET", headers, cache: "no-store", credentials: "same-origin" };
    if (o.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(o.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new ApiError("cannot reach the EchoPilot server", 0, "network");
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (response.ok && payload && payload.ok) return payload.data;
    const error = (payload && payload.error) || {};
    const err = new ApiError(
      error.message || response.status + " " + (response.statusText || "error"),
      response.status,
      error.code,
      error.fields,
    );
    if (isApi && !o.key) handleAuthFailure(err);
    throw err;
  }

  function handleAuthFailure(err) {
    if (err.status === 401 && auth.get()) {
      signOut("Your key was not accepted (it may have changed). Enter it again.");
    } else if (err.status === 429) {
      toast("Too many failed key attempts: wait a few minutes, then try again.", "error");
    }
  }

  /** Errors worth showing: not the ones that already sent the user to the key prompt. */
  function reportable(err) {
    return !(err instanceof ApiError && err.status === 401);
  }

  /* ------------------------------------------------------------------ feedback */

  function toast(message, kind) {
    const box = $("toasts");
    // One refresh makes several calls; the same failure is shown once.
    if ([...box.children].some((t) => t.textContent === message)) return;
    const item = el("div", {
      className: "toast " + (kind || "ok"),
      text: message,
      attrs: { role: "status" },
    });
    box.append(item);
    setTimeout(() => item.remove(), kind === "error" ? 9000 : 5000);
  }

  function setMsg(node, message, kind) {
    if (!node) return;
    node.textContent = message || "";
    node.classList.remove("ok", "error", "busy");
    if (kind) node.classList.add(kind);
  }

  /**
   * Run `fn` with `btn` showing progress (disabled + spinner + label), then report the
   * outcome in `msgNode` (or a toast). Resolves to fn's result, or undefined on error.
   */
  async function runAction(btn, fn, opts) {
    const o = opts || {};
    if (btn.disabled) return undefined;
    const label = btn.textContent;
    btn.disabled = true;
    btn.classList.add("is-busy");
    btn.setAttribute("aria-busy", "true");
    btn.textContent = o.busyLabel || label + "…";
    setMsg(o.msgNode, o.busyText || "Working…", "busy");
    try {
      const result = await fn();
      const text = o.success ? o.success(result) : "Done.";
      if (o.msgNode) setMsg(o.msgNode, text, "ok");
      else if (text) toast(text, "ok");
      return result;
    } catch (err) {
      if (reportable(err)) {
        if (o.msgNode) setMsg(o.msgNode, err.message, "error");
        else toast(err.message, "error");
        if (o.onError) o.onError(err);
      }
      return undefined;
    } finally {
      btn.disabled = false;
      btn.classList.remove("is-busy");
      btn.removeAttribute("aria-busy");
      btn.textContent = label;
    }
  }

  function hasBusy(node) {
    return Boolean(node && node.querySelector(".is-busy"));
  }

  /* ------------------------------------------------------------------ sign in / out */

  function showLogin(message, kind) {
    show($("dashboard"), false);
    show($("sign-out"), false);
    show($("refresh-all"), false);
    show($("login"), true);
    const msg = $("login-msg");
    msg.textContent = message || "";
    msg.className = "form-msg " + (kind || "error");
    show(msg, Boolean(message));
    $("login-key").focus();
  }

  async function onLogin(event) {
    event.preventDefault();
    const input = $("login-key");
    const key = input.value.trim();
    if (!key) {
      showLogin("Enter the dashboard key.");
      return;
    }
    const btn = $("login-submit");
    btn.disabled = true;
    btn.classList.add("is-busy");
    show($("login-msg"), false);
    try {
      const system = await api("/api/system", { key });
      auth.set(key);
      input.value = "";
      state.system = system;
      enterDashboard();
    } catch (err) {
      if (err.status === 401)
        showLogin("That key was not accepted. Check DASHBOARD_KEY or var/dashboard.key.");
      else if (err.status === 429) showLogin("Too many attempts: wait a few minutes, then try again.");
      else showLogin("Could not check the key: " + err.message);
      input.select();
    } finally {
      btn.disabled = false;
      btn.classList.remove("is-busy");
    }
  }

  function signOut(message) {
    auth.clear();
    stopTimers();
    state.running = false;
    clearDashboard();
    showLogin(message || "Signed out.", message ? "error" : "ok");
  }

  function enterDashboard() {
    show($("login"), false);
    show($("dashboard"), true);
    show($("sign-out"), true);
    show($("refresh-all"), true);
    state.running = true;
    refreshLive();
    refreshCharts();
    startTimers();
  }

  /** Leave no business data in the page once signed out. */
  function clearDashboard() {
    ["health", "kpis", "jobs-body", "jobs-attention", "job-dialog-body"].forEach((id) =>
      $(id).replaceChildren(),
    );
    ["kpi-asof", "jobs-msg", "last-updated"].forEach((id) => ($(id).textContent = ""));
    Object.values(CHARTS).forEach((c) => purgeChart($(c.id)));
    Object.keys(PANELS).forEach((name) => $(PANELS[name].id).replaceChildren());
    state.panels = {};
    state.featuresSeen = null;
    state.jobs = [];
    state.nextCursor = null;
    if ($("job-dialog").open) $("job-dialog").close();
  }

  /* ------------------------------------------------------------------ refresh loop */

  function startTimers() {
    stopTimers();
    state.timers.push(setInterval(refreshLive, LIVE_EVERY_MS));
    state.timers.push(setInterval(refreshCharts, CHARTS_EVERY_MS));
  }

  function stopTimers() {
    state.timers.forEach(clearInterval);
    state.timers = [];
  }

  async function refreshLive() {
    if (!state.running || document.hidden) return;
    await loadHealth();
    if (!state.running) return;
    await Promise.allSettled([loadKpis(), loadJobs({ auto: true }), refreshPanels()]);
    if (state.running) {
      $("last-updated").textContent = "Updated " + new Date().toLocaleTimeString();
    }
  }

  async function refreshAll() {
    await Promise.allSettled([refreshLive(), refreshCharts()]);
  }

  /* ------------------------------------------------------------------ health badges */

  async function loadHealth() {
    const [health, system] = await Promise.allSettled([api("/health"), api("/api/system")]);
    const h = health.status === "fulfilled" ? health.value : null;
    const s = system.status === "fulfilled" ? system.value : state.system;
    if (!state.running) return;
    state.health = h;
    if (s) {
      state.system = s;
      state.features = s.features || {};
      mountPanelsIfChanged();
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
        detail ? el("div", { className: "badge-detail", text: detail, title: detail }) : null,
      ),
    );
  }

  function renderHealth(h, s) {
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
      label: "Jobs",
      show: (d) => fmt.num(d.jobs_7d),
      sub: (d) => fmt.num(d.finished_7d) + " finished",
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
      show: (d) => fmt.money(d.cost_7d, true),
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

  async function loadKpis() {
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

  /* ------------------------------------------------------------------ charts */

  const CHARTS = {
    jobs: { id: "chart-jobs", draw: drawJobsChart },
    qa: { id: "chart-qa", draw: drawQaChart },
    money: { id: "chart-money", draw: drawMoneyChart },
    latency: { id: "chart-latency", draw: drawLatencyChart },
  };

  const STATUS_COLORS = {
    done: "#2f9e6e",
    needs_review: "#d9962b",
    failed: "#e07b39",
    dead: "#d64545",
    cancelled: "#9aa3ad",
    queued: "#4a7fd6",
    processing: "#7d63d1",
  };

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function baseLayout() {
    const grid = cssVar("--grid", "#e6e9ee");
    const text = cssVar("--muted", "#5f6b76");
    return {
      autosize: true,
      margin: { l: 52, r: 12, t: 30, b: 36 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: cssVar("--font", "system-ui, sans-serif"), size: 12, color: text },
      xaxis: {
        type: "date",
        tickformat: "%b %d",
        gridcolor: grid,
        linecolor: grid,
        zeroline: false,
        hoverformat: "%a %b %d",
      },
      yaxis: { gridcolor: grid, linecolor: grid, zerolinecolor: grid, rangemode: "tozero", automargin: true },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
      hovermode: "x unified",
      bargap: 0.25,
    };
  }

  function purgeChart(node) {
    if (window.Plotly && node.classList.contains("js-plotly-plot")) window.Plotly.purge(node);
    node.replaceChildren();
  }

  function plot(id, traces, layout, hasData) {
    const node = $(id);
    if (!hasData) {
      purgeChart(node);
      node.append(el("p", { className: "chart-empty", text: "no data yet" }));
      return;
    }
    if (!node.classList.contains("js-plotly-plot")) node.replaceChildren();
    const base = baseLayout();
    const merged = Object.assign({}, base, layout, {
      xaxis: Object.assign({}, base.xaxis, layout.xaxis),
      yaxis: Object.assign({}, base.yaxis, layout.yaxis),
    });
    window.Plotly.newPlot(node, traces, merged, PLOT_CONFIG);
  }

  async function refreshCharts() {
    if (!state.running || document.hidden) return;
    if (!window.Plotly) {
      Object.values(CHARTS).forEach((c) =>
        $(c.id).replaceChildren(
          el("p", { className: "chart-empty", text: "Charts unavailable: the chart library did not load." }),
        ),
      );
      return;
    }
    try {
      const data = await api("/api/metrics/daily?days=30");
      if (!state.running) return;
      state.qaThreshold = data.qa_threshold;
      const days = data.days || [];
      Object.values(CHARTS).forEach((c) => c.draw(c.id, days, data));
    } catch (err) {
      if (!reportable(err)) return;
      Object.values(CHARTS).forEach((c) =>
        $(c.id).replaceChildren(
          el("p", { className: "chart-empty error", text: "Could not load: " + err.message }),
        ),
      );
    }
  }

  function drawJobsChart(id, days) {
    const x = days.map((d) => d.day);
    const total = days.reduce((n, d) => n + STATUSES.reduce((m, s) => m + (d.jobs[s] || 0), 0), 0);
    const traces = STATUSES.filter((s) => days.some((d) => d.jobs[s] > 0)).map((s) => ({
      type: "bar",
      name: fmt.label(s),
      x,
      y: days.map((d) => d.jobs[s] || 0),
      marker: { color: STATUS_COLORS[s] },
      hovertemplate: "%{y}<extra>" + fmt.label(s) + "</extra>",
    }));
    plot(id, traces, { barmode: "stack", yaxis: { title: { text: "jobs" } } }, total > 0);
  }

  function drawQaChart(id, days, data) {
    const x = days.map((d) => d.day);
    const threshold = data.qa_threshold;
    const traces = [
      {
        type: "scatter",
        mode: "lines+markers",
        name: "average QA",
        x,
        y: days.map((d) => d.avg_qa),
        line: { color: cssVar("--accent", "#3366cc"), width: 2 },
        marker: { size: 5 },
        connectgaps: false,
        hovertemplate: "%{y:.1f}<extra>average QA</extra>",
      },
      {
        type: "scatter",
        mode: "lines",
        name: "threshold " + threshold,
        x: [x[0], x[x.length - 1]],
        y: [threshold, threshold],
        line: { color: STATUS_COLORS.dead, width: 1.5, dash: "dash" },
        hoverinfo: "skip",
      },
    ];
    const values = days.map((d) => d.avg_qa).filter((v) => v !== null);
    const low = Math.min(threshold, ...values);
    plot(
      id,
      traces,
      {
        yaxis: {
          range: [Math.max(0, Math.floor(low - 10)), 100],
          rangemode: "normal",
          title: { text: "score" },
        },
      },
      values.length > 0,
    );
  }

  function drawMoneyChart(id, days) {
    const x = days.map((d) => d.day);
    const revenue = days.map((d) => Number(d.revenue));
    const cost = days.map((d) => Number(d.cost));
    const traces = [
      {
        type: "bar",
        name: "revenue",
        x,
        y: revenue,
        marker: { color: "#5b8def" },
        hovertemplate: "%{y:$,.2f}<extra>revenue</extra>",
      },
      {
        type: "bar",
        name: "cost",
        x,
        y: cost,
        marker: { color: "#e07b39" },
        hovertemplate: "%{y:$,.4f}<extra>cost</extra>",
      },
      {
        type: "scatter",
        mode: "lines+markers",
        name: "profit",
        x,
        y: days.map((d) => Number(d.profit)),
        line: { color: STATUS_COLORS.done, width: 2 },
        marker: { size: 4 },
        hovertemplate: "%{y:$,.2f}<extra>profit</extra>",
      },
    ];
    const any = revenue.some((v) => v !== 0) || cost.some((v) => v !== 0);
    plot(
      id,
      traces,
      { barmode: "group", yaxis: { tickprefix: "$", tickformat: ",.0f", rangemode: "normal" } },
      any,
    );
  }

  function drawLatencyChart(id, days) {
    const x = days.map((d) => d.day);
    const seconds = (v) => (v === null ? null : v / 1000);
    const traces = [
      {
        type: "scatter",
        mode: "lines+markers",
        name: "p50",
        x,
        y: days.map((d) => seconds(d.latency_p50_ms)),
        line: { color: "#5b8def", width: 2 },
        marker: { size: 4 },
        hovertemplate: "%{y:.1f} s<extra>p50</extra>",
      },
      {
        type: "scatter",
        mode: "lines+markers",
        name: "p95",
        x,
        y: days.map((d) => seconds(d.latency_p95_ms)),
        line: { color: "#7d63d1", width: 2, dash: "dot" },
        marker: { size: 4 },
        hovertemplate: "%{y:.1f} s<extra>p95</extra>",
      },
    ];
    const any = days.some((d) => d.latency_p50_ms !== null);
    plot(id, traces, { yaxis: { title: { text: "seconds" }, ticksuffix: " s" } }, any);
  }

  /* ------------------------------------------------------------------ jobs table */

  /** Filter the table; rows of the previous filter go at once, so none is mistaken for a match. */
  function setJobsFilter(status) {
    $("jobs-filter").value = status;
    state.jobs = [];
    state.nextCursor = null;
    show($("jobs-more"), false);
    $("jobs-body").replaceChildren(
      el("tr", {}, el("td", { className: "empty", text: "Loading…", attrs: { colspan: "10" } })),
    );
    loadJobs({ reset: true }).catch(() => {});
  }

  /**
   * Load jobs. An automatic refresh reloads as many rows as are shown, so pages already
   * opened with "more" stay open; `append` adds the next page.
   */
  async function loadJobs(opts) {
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

  function statusBadge(status) {
    return el("span", { className: "status status-" + status, text: fmt.label(status), data: { status } });
  }

  function jobRow(job) {
    const qaLow = job.qa_score !== null && job.qa_threshold !== null && job.qa_score < job.qa_threshold;
    const cost =
      job.cost_usd === null
        ? el("span", {
            className: "warn-text",
            text: "unknown",
            title: "no price for: " + job.unpriced_models.join(", "),
          })
        : fmt.money(job.cost_usd, true);
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
    const row = el(
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
      el("td", { text: fmt.label(job.task_type) }),
      el("td", {}, statusBadge(job.status)),
      el("td", { className: "num" + (qaLow ? " warn-text" : ""), text: fmt.qa(job.qa_score) }),
      el("td", { className: "num" }, cost),
      el("td", { className: "num", text: fmt.money(job.price_usd) }),
      el("td", {
        className: "pay pay-" + job.payment_status,
        text: job.payment_status === "na" ? DASH : job.payment_status,
      }),
      el("td", { className: "nowrap", text: fmt.when(job.created_at), title: job.created_at || "" }),
      actions,
    );
    return row;
  }

  function renderJobs() {
    const body = $("jobs-body");
    const status = $("jobs-filter").value;
    if (!state.jobs.length) {
      const text = status
        ? "No " + fmt.label(status) + " jobs."
        : "No jobs yet: submit one below, or load demo data with `echopilot demo seed`.";
      body.replaceChildren(el("tr", {}, el("td", { className: "empty", text, attrs: { colspan: "10" } })));
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

  /* ------------------------------------------------------------------ job detail */

  const DETAIL_ORDER = [
    "id",
    "name",
    "status",
    "task_type",
    "client",
    "source",
    "priority",
    "attempts",
    "max_attempts",
    "qa_score",
    "qa_threshold",
    "qa_target",
    "qa_note",
    "qa_breakdown",
    "provider",
    "model",
    "answer_path",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "cost_known_usd",
    "unpriced_models",
    "price_usd",
    "payment_status",
    "error",
    "error_kind",
    "retry_at",
    "created_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "input_chars",
  ];
  // Attempt columns after # and status: [heading, cell text, class suffix]. Tokens share
  // one column to keep the table narrow enough for the dialog.
  const ATTEMPT_COLUMNS = [
    ["model", (a) => a.model || DASH, "model"],
    ["tokens in / out", (a) => fmt.num(a.tokens_in) + " / " + fmt.num(a.tokens_out), "tokens"],
    ["cost", (a) => fmt.money(a.cost_usd, true), "cost_usd"],
    ["latency", (a) => fmt.duration(a.latency_ms), "latency_ms"],
    ["worker", (a) => a.worker || DASH, "worker"],
    ["started", (a) => fmt.when(a.started_at), "started_at"],
    ["calls", (a) => (a.calls || []).length, "calls"],
    ["error", (a) => a.error || DASH, "error"],
  ];

  async function openJob(id) {
    const dialog = $("job-dialog");
    $("job-dialog-title").textContent = "Job " + id;
    $("job-dialog-body").replaceChildren(el("p", { className: "muted", text: "Loading…" }));
    if (!dialog.open) dialog.showModal();
    try {
      renderJobDetail(await api("/api/jobs/" + id));
    } catch (err) {
      if (reportable(err))
        $("job-dialog-body").replaceChildren(el("p", { className: "form-msg error", text: err.message }));
    }
  }

  function renderJobDetail(job) {
    $("job-dialog-title").textContent = "Job " + job.id + ": " + job.name;
    const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
    $("job-dialog-body").replaceChildren(
      el("div", { className: "detail-actions" }, statusBadge(job.status), ...jobActions(job, msg), msg),
      detailFields(job),
      el("h3", { text: "Attempts" }),
      attemptsTable(job.attempt_log || []),
      el("h3", { text: "Result" }),
      el("pre", { className: "result-text", text: job.result || "(no result yet)" }),
    );
  }

  function jobActions(job, msg) {
    const act = (label, path, busyLabel, done) =>
      button(
        label,
        async (ev) => {
          const result = await runAction(ev.currentTarget, () => api(path, { method: "POST" }), {
            busyLabel,
            msgNode: msg,
            success: done,
          });
          if (result) {
            loadJobs().catch(() => {});
            if (result.id === job.id) renderJobDetail(result);
            else openJob(job.id);
          }
        },
        "small",
      );
    const out = [];
    if (RETRYABLE.has(job.status))
      out.push(act("Retry", "/api/jobs/" + job.id + "/retry", "Retrying…", () => "Queued again."));
    if (CANCELLABLE.has(job.status))
      out.push(act("Cancel", "/api/jobs/" + job.id + "/cancel", "Cancelling…", () => "Cancelled."));
    if (state.features.payments && job.payment_status === "unpaid") {
      out.push(act("Mark paid", "/api/payments/" + job.id + "/mark-paid", "Marking…", () => "Marked paid."));
    }
    return out;
  }

  function detailFields(job) {
    const skip = new Set(["attempt_log", "result"]);
    const keys = DETAIL_ORDER.filter((k) => k in job).concat(
      Object.keys(job).filter((k) => !DETAIL_ORDER.includes(k) && !skip.has(k)),
    );
    const list = el("dl", { className: "fields" });
    keys.forEach((k) => {
      list.append(
        el(
          "div",
          { className: "field-row" },
          el("dt", { text: fmt.fieldLabel(k) }),
          el("dd", { text: fmt.any(k, job[k]), title: typeof job[k] === "string" ? job[k] : "" }),
        ),
      );
    });
    return list;
  }

  function attemptsTable(attempts) {
    if (!attempts.length) return el("p", { className: "muted", text: "No attempts yet." });
    const th = (text) => el("th", { text, attrs: { scope: "col" } });
    const head = el("tr", {}, th("#"), th("status"), ...ATTEMPT_COLUMNS.map(([title]) => th(title)));
    const rows = attempts.map((a) =>
      el(
        "tr",
        {},
        el("td", { text: a.n }),
        el("td", {}, statusBadge(a.status)),
        ...ATTEMPT_COLUMNS.map(([, cell, key]) => el("td", { className: "col-" + key, text: cell(a) })),
      ),
    );
    return el(
      "div",
      { className: "table-wrap" },
      el("table", { className: "table compact attempts" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    );
  }

  /* ------------------------------------------------------------------ submit form */

  function formFields(form) {
    const value = (name) => form.elements[name].value.trim();
    const body = { name: value("name"), task_type: value("task_type"), input: form.elements.input.value };
    if (value("client")) body.client = value("client");
    if (value("qa_target") !== "") body.qa_target = Number(value("qa_target"));
    return body;
  }

  function clearFieldErrors(form) {
    form.querySelectorAll(".field").forEach((f) => {
      f.classList.remove("invalid");
      const p = f.querySelector(".field-error");
      p.textContent = "";
      p.hidden = true;
      f.querySelector("input, select, textarea").removeAttribute("aria-invalid");
    });
  }

  /** Put each "field: message" part of error.message under the field error.fields names. */
  function showFieldErrors(form, err) {
    const parts = {};
    String(err.message)
      .split("; ")
      .forEach((part) => {
        const i = part.indexOf(": ");
        if (i > 0) parts[part.slice(0, i)] = part.slice(i + 2);
      });
    let first = null;
    (err.fields || []).forEach((name) => {
      const field = form.querySelector('.field[data-field="' + CSS.escape(name) + '"]');
      if (!field) return;
      field.classList.add("invalid");
      const p = field.querySelector(".field-error");
      p.textContent = parts[name] || err.message;
      p.hidden = false;
      const input = field.querySelector("input, select, textarea");
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    });
    if (first) first.focus();
  }

  async function onSubmitJob(event) {
    event.preventDefault();
    const form = event.currentTarget;
    clearFieldErrors(form);
    const job = await runAction(
      $("submit-job"),
      () => api("/api/jobs", { method: "POST", body: formFields(form) }),
      {
        busyLabel: "Submitting…",
        msgNode: $("submit-msg"),
        success: (j) => "Job " + j.id + " submitted (" + fmt.label(j.status) + ").",
        onError: (err) => showFieldErrors(form, err),
      },
    );
    if (job) {
      form.reset();
      await loadJobs().catch(() => {});
    }
  }

  /* ------------------------------------------------------------------ feature panels */

  /*
   * One entry per panel: its title, the /api/system feature that enables it, and a mount
   * function that builds the panel and returns an optional refresh(), called on every live
   * tick. Enabling a feature later only needs its route; the panel code is already here.
   */
  const PANELS = {
    automations: {
      id: "panel-automations",
      title: "Automations",
      feature: "scheduler",
      release: "scheduler",
      mount: mountAutomations,
    },
    operations: { id: "panel-operations", title: "Operations", mount: mountOperations },
    brief: { id: "panel-brief", title: "CEO brief", feature: "briefs", release: "briefs", mount: mountBrief },
    activity: {
      id: "panel-activity",
      title: "Activity",
      feature: "activity",
      release: "activity feed",
      mount: mountActivity,
    },
  };

  function notYet(release) {
    return el("p", {
      className: "not-yet",
      text: "Not available yet: arrives with the " + release + " release",
    });
  }

  function mountPanelsIfChanged() {
    const seen = JSON.stringify(state.features);
    if (seen === state.featuresSeen) return;
    state.featuresSeen = seen;
    Object.entries(PANELS).forEach(([name, panel]) => mountPanel(name, panel));
  }

  function mountPanel(name, panel) {
    const root = $(panel.id);
    const body = el("div", { className: "panel-body" });
    root.replaceChildren(el("h2", { text: panel.title }), body);
    root.dataset.panel = name;
    state.panels[name] = null;
    if (panel.feature && !state.features[panel.feature]) {
      root.classList.add("unavailable");
      body.append(notYet(panel.release));
      return;
    }
    root.classList.remove("unavailable");
    const refresh = panel.mount(body);
    if (typeof refresh === "function") {
      state.panels[name] = refresh;
      refresh().catch(() => {});
    }
  }

  async function refreshPanels() {
    const jobs = Object.entries(state.panels)
      .filter(([name, refresh]) => refresh && !hasBusy($(PANELS[name].id)))
      .map(([, refresh]) => refresh());
    await Promise.allSettled(jobs);
  }

  /** A panel's error line: shows err.message, or clears. */
  function panelError(node, err) {
    if (err && reportable(err)) setMsg(node, err.message, "error");
  }

  /* --- automations (scheduler) */

  function mountAutomations(body) {
    const summary = el("p", { className: "auto-summary muted", text: "Loading…" });
    const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
    const table = el("div", { className: "table-wrap" });
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

  function lastRunCell(last) {
    if (!last) return el("td", { className: "muted", text: "never" });
    const when = fmt.when(last.finished_at || last.started_at);
    const how = last.trigger && last.trigger !== "schedule" ? " · " + last.trigger : "";
    return el(
      "td",
      {},
      statusBadge(last.status),
      el("div", { className: "muted small nowrap", text: when + how }),
    );
  }

  function scheduleTable(schedule, msg, refresh) {
    if (!schedule.length) return el("p", { className: "muted", text: "No scheduled tasks." });
    const head = el(
      "tr",
      {},
      ...["Task", "Schedule", "Next run", "Last run", "Result", ""].map((t) =>
        el("th", { text: t, attrs: { scope: "col" } }),
      ),
    );
    const rows = schedule.map((t) => {
      const last = t.last_run || null;
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
      const result = last ? last.error || last.note || describeSummary(t.task, last.summary) : DASH;
      return el(
        "tr",
        { data: { task: t.task } },
        el(
          "td",
          {},
          el("div", { className: "mono", text: t.task }),
          t.description ? el("div", { className: "muted small", text: t.description }) : null,
        ),
        el("td", { className: "nowrap", text: t.schedule || DASH }),
        el("td", { className: "nowrap", text: fmt.when(t.next_run), title: t.next_run || "" }),
        lastRunCell(last),
        el("td", { className: "summary-cell" + (last && last.error ? " error-text" : ""), text: result }),
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

  /** A short, readable line from a result object (scalars shown, lists counted). */
  function summarize(value) {
    if (value === null || value === undefined) return DASH;
    if (typeof value !== "object") return String(value);
    if (Array.isArray(value)) return value.length + " items";
    return Object.entries(value)
      .map(
        ([k, v]) =>
          fmt.label(k) + ": " + (Array.isArray(v) ? v.length : v && typeof v === "object" ? "…" : v),
      )
      .join(" · ");
  }

  /* --- operations buttons */

  const OPERATIONS = [
    {
      feature: "self_heal",
      release: "self-heal",
      title: "Self-heal",
      text: "Re-queue stuck and failed jobs; list unpaid work.",
      summary: (r) =>
        "retried " +
        r.retried_count +
        ", recovered " +
        r.recovered_stuck +
        " stuck, " +
        r.dead +
        " dead, " +
        (r.eligible_unpaid || []).length +
        " unpaid to follow up" +
        (r.worker_restart_suggested ? "; restart the worker" : ""),
      actions: [
        { label: "Dry run", path: "/api/self-heal?dry_run=true" },
        { label: "Run self-heal", path: "/api/self-heal", primary: true },
      ],
    },
    {
      feature: "alerts",
      release: "alerts",
      title: "Alert check",
      text: "Evaluate the alert rules now and send what fires.",
      actions: [{ label: "Check alerts", path: "/api/alerts/trigger", primary: true }],
    },
    {
      feature: "optimizer",
      release: "optimiser",
      title: "Price optimiser",
      text: "Propose price changes from recent QA and margin.",
      actions: [
        { label: "Preview", path: "/api/optimizer/run?dry_run=true" },
        {
          label: "Apply",
          path: "/api/optimizer/run",
          primary: true,
          confirm: "Apply the optimiser's price changes?",
        },
      ],
    },
    {
      feature: "retention",
      release: "retention",
      title: "Retention",
      text: "Prune logs, reports and rows past the keep window.",
      summary: (r) => {
        const rows = Object.values(r.rows || {}).reduce((n, v) => n + v, 0);
        const verb = r.dry_run ? "would delete " : "deleted ";
        return (
          verb +
          r.deleted +
          " files (" +
          fmt.bytes(r.bytes_freed) +
          ") and " +
          rows +
          " rows; keeping the newest " +
          r.keep +
          (r.errors ? "; " + r.errors + " errors" : "")
        );
      },
      actions: [
        { label: "Dry run", path: "/api/retention/run?dry_run=true", primary: true },
        {
          label: "Run retention",
          path: "/api/retention/run",
          confirm: "Delete data past the retention window?",
        },
      ],
    },
    {
      feature: "reports",
      release: "reports",
      title: "Daily report",
      text: "Build the daily report for today.",
      actions: [{ label: "Build report", path: "/api/reports/daily", primary: true }],
    },
  ];

  function mountOperations(body) {
    const output = el("pre", { className: "op-output", attrs: { "aria-live": "polite" } });
    output.hidden = true;
    body.append(
      el("ul", { className: "op-list" }, ...OPERATIONS.map((op) => operationRow(op, output))),
      output,
    );
    return null;
  }

  function operationRow(op, output) {
    const head = el(
      "div",
      { className: "op-head" },
      el("strong", { text: op.title }),
      el("span", { className: "muted small", text: op.text }),
    );
    if (!state.features[op.feature]) {
      return el("li", { className: "op unavailable", data: { op: op.feature } }, head, notYet(op.release));
    }
    const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
    const buttons = op.actions.map((a) =>
      button(
        a.label,
        async (ev) => {
          // A plain confirm() is enough for the two heavy, rare actions.
          if (a.confirm && !window.confirm(a.confirm)) return;
          const result = await runAction(ev.currentTarget, () => api(a.path, { method: "POST" }), {
            msgNode: msg,
            success: (r) => (op.summary && r ? safely(() => op.summary(r), "done") : "done") + ".",
          });
          if (result !== undefined) {
            output.textContent =
              op.title + (a.path.includes("dry_run") ? " (dry run)" : "") + "\n" + describe(result);
            output.hidden = false;
          }
        },
        "small " + (a.primary ? "primary" : ""),
      ),
    );
    return el(
      "li",
      { className: "op", data: { op: op.feature } },
      head,
      el("div", { className: "panel-actions" }, ...buttons, msg),
    );
  }

  /** fn(), or `fallback` when an answer's shape is not the one expected. */
  function safely(fn, fallback) {
    try {
      return fn();
    } catch (_) {
      return fallback;
    }
  }

  /** A result object as indented "key: value" lines, for the operations output box. */
  function describe(value, depth) {
    const d = depth || 0;
    const pad = "  ".repeat(d);
    if (value === null || typeof value !== "object") return pad + fmt.any("", value);
    if (Array.isArray(value)) {
      if (!value.length) return pad + "(none)";
      return value
        .slice(0, 20)
        .map((v) => (v && typeof v === "object" ? pad + "- " + summarize(v) : pad + "- " + v))
        .join("\n");
    }
    return Object.entries(value)
      .map(([k, v]) =>
        v && typeof v === "object"
          ? pad + fmt.label(k) + ":\n" + describe(v, d + 1)
          : pad + fmt.label(k) + ": " + fmt.any(k, v),
      )
      .join("\n");
  }

  /* --- CEO brief */

  function mountBrief(body) {
    const content = el("div", { className: "brief" }, el("p", { className: "muted", text: "Loading…" }));
    const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
    const generate = button(
      "Generate brief",
      async (ev) => {
        const brief = await runAction(ev.currentTarget, () => api("/api/exec/brief", { method: "POST" }), {
          busyLabel: "Generating…",
          msgNode: msg,
          success: () => "Brief generated.",
        });
        if (brief) renderBrief(content, brief);
      },
      "small primary",
    );
    body.append(el("div", { className: "panel-actions" }, generate, msg), content);
    api("/api/exec/report-latest")
      .then((brief) => renderBrief(content, brief))
      .catch((err) => {
        if (err.status === 404)
          content.replaceChildren(el("p", { className: "muted", text: "No brief yet: generate one." }));
        else if (reportable(err))
          content.replaceChildren(el("p", { className: "form-msg error", text: err.message }));
      });
    return null;
  }

  function actionText(a) {
    if (!a || typeof a !== "object") return String(a);
    const main = a.action || a.title || a.text || a.message || summarize(a);
    const extra = [a.owner, a.priority, a.eta_hours !== undefined ? a.eta_hours + " h" : null]
      .filter(Boolean)
      .join(" · ");
    return extra ? main + " (" + extra + ")" : main;
  }

  function briefList(title, items) {
    if (!items || !items.length) return null;
    return el(
      "div",
      {},
      el("h3", { text: title }),
      el("ul", { className: "plain-list" }, ...items.map((i) => el("li", { text: actionText(i) }))),
    );
  }

  function renderBrief(node, b) {
    const parts = [
      el("p", { className: "brief-headline", text: b.headline || DASH }),
      b.summary ? el("p", { text: b.summary }) : null,
      b.confidence !== undefined && b.confidence !== null
        ? el("p", { className: "muted small", text: "confidence: " + b.confidence })
        : null,
      briefList("Top risks", b.top_risks),
      briefList("Next 24 hours", b.actions_next_24h),
      briefList("Next 7 days", b.actions_next_7d),
    ];
    node.replaceChildren(...parts.filter(Boolean)); // replaceChildren would print "null"
  }

  /* --- activity feed (audit log) */

  function mountActivity(body) {
    const list = el(
      "ul",
      { className: "activity plain-list" },
      el("li", { className: "muted", text: "Loading…" }),
    );
    const msg = el("span", { className: "form-msg" });
    body.append(list, msg);

    async function refresh() {
      try {
        const data = await api("/api/activity?limit=20");
        const items = Array.isArray(data) ? data : data.items || [];
        list.replaceChildren(
          ...(items.length
            ? items.map((i) =>
                el(
                  "li",
                  {},
                  el("span", {
                    className: "muted small nowrap",
                    text: fmt.when(i.at || i.ts || i.created_at),
                  }),
                  " ",
                  el("strong", { text: i.action || i.event || DASH }),
                  " ",
                  el("span", { text: [i.target, i.actor ? "by " + i.actor : ""].filter(Boolean).join(" ") }),
                ),
              )
            : [el("li", { className: "muted", text: "Nothing yet." })]),
        );
        setMsg(msg, "");
      } catch (err) {
        panelError(msg, err);
        throw err;
      }
    }
    return refresh;
  }

  /* ------------------------------------------------------------------ wiring */

  function bind() {
    $("login-form").addEventListener("submit", onLogin);
    $("sign-out").addEventListener("click", (ev) => {
      ev.preventDefault();
      signOut();
    });
    $("refresh-all").addEventListener("click", (ev) =>
      runAction(ev.currentTarget, refreshAll, { busyLabel: "Refreshing…", success: () => "" }),
    );
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
    $("submit-form").addEventListener("submit", onSubmitJob);
    $("job-dialog-close").addEventListener("click", () => $("job-dialog").close());
    $("job-dialog").addEventListener("click", (ev) => {
      if (ev.target === ev.currentTarget) ev.currentTarget.close(); // click on the backdrop
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.running) refreshLive();
    });
  }

  function start() {
    bind();
    if (auth.get()) enterDashboard();
    else showLogin();
  }

  window.EchoPilot = Object.freeze({ refresh: refreshAll, signOut: () => signOut() });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
