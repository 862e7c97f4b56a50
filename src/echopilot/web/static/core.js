/*
 * Shared pieces of the dashboard and the API docs page (ES module).
 *
 * The pages' Content-Security-Policy forbids inline scripts and eval, so every handler is
 * bound with addEventListener, and data only ever reaches the page through textContent
 * (never innerHTML).
 *
 * The dashboard key lives in sessionStorage (one key per tab, shared by every page of the
 * origin) and is sent as X-Dash-Key on /api/ requests only. It is never written into the
 * DOM, a URL or the console.
 */

const KEY_STORE = "echopilot.dashKey";
export const DASH = "—";

/** What the dashboard's modules share: features, the jobs shown, timers, panels. */
export const state = {
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

export function $(id) {
  return document.getElementById(id);
}

/** el("td", {className, text, title, type, attrs, data, on}, ...children) */
export function el(tag, props, ...children) {
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

export function button(label, onClick, className) {
  return el("button", {
    type: "button",
    className: "btn " + (className || ""),
    text: label,
    on: { click: onClick },
  });
}

export function show(node, visible) {
  node.hidden = !visible;
}

/* ------------------------------------------------------------------ formatting */

// Money has one precision: USD with 2 decimals (KPIs, tables, charts). The one exception
// is a single job's (or attempt's) model cost under a cent, which shows two significant
// digits ($0.0042) so that a cheap call never reads as free.
const usd = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
const usdSubCent = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  maximumSignificantDigits: 2,
});
const integer = new Intl.NumberFormat("en-US");

export const fmt = {
  /** USD with 2 decimals, from a decimal string or a number. */
  money(value) {
    if (value === null || value === undefined || value === "") return DASH;
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value);
    return usd.format(n);
  },
  /** One job's or attempt's model cost: 2 decimals, more only under a cent. */
  jobCost(value) {
    if (value === null || value === undefined || value === "") return DASH;
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value);
    if (n !== 0 && Math.abs(n) < 0.01) return usdSubCent.format(n);
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
    if (/_usd$/.test(key)) return fmt.money(value);
    if (/_at$/.test(key) || key === "next_run") return fmt.when(value);
    if (/_ms$/.test(key)) return fmt.duration(value);
    if (/_s$/.test(key) && typeof value === "number") return fmt.duration(value * 1000);
    if (Array.isArray(value)) return value.length ? value.map((v) => fmt.any("", v)).join(", ") : DASH;
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  },
};

/* ------------------------------------------------------------------ key storage */

export const auth = {
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

export class ApiError extends Error {
  constructor(message, status, code, fields) {
    super(message);
    this.status = status;
    this.code = code || "error";
    this.fields = fields || [];
  }
}

let authFailureHandler = null;

/** Who hears about a stored key that stopped working (401) or a lock-out (429). */
export function onAuthFailure(handler) {
  authFailureHandler = handler;
}

/** Headers of a request to `path` with the key: X-Dash-Key under /api/ only. */
export function keyHeaders(path, key) {
  const headers = { Accept: "application/json" };
  if (path.startsWith("/api/") || path === "/openapi.json") {
    const k = key || auth.get();
    if (!k) throw new ApiError("signed out", 401, "signed_out");
    headers["X-Dash-Key"] = k;
  }
  return headers;
}

/**
 * fetch() a JSON envelope; resolve to `data` or reject with ApiError(error.message).
 * opts.key checks a candidate key (the login form) instead of the stored one.
 */
export async function api(path, opts) {
  const o = opts || {};
  const headers = keyHeaders(path, o.key);
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
  if ("X-Dash-Key" in headers && !o.key && authFailureHandler) authFailureHandler(err);
  throw err;
}

/** Errors worth showing: not the ones that already sent the user to the key prompt. */
export function reportable(err) {
  return !(err instanceof ApiError && err.status === 401);
}

/* ------------------------------------------------------------------ feedback */

export function toast(message, kind) {
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

export function setMsg(node, message, kind) {
  if (!node) return;
  node.textContent = message || "";
  node.classList.remove("ok", "error", "busy");
  if (kind) node.classList.add(kind);
}

/**
 * Run `fn` with `btn` showing progress (disabled + spinner + label), then report the
 * outcome in `msgNode` (or a toast). Resolves to fn's result, or undefined on error.
 */
export async function runAction(btn, fn, opts) {
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

export function hasBusy(node) {
  return Boolean(node && node.querySelector(".is-busy"));
}

export function statusBadge(status) {
  return el("span", { className: "status status-" + status, text: fmt.label(status), data: { status } });
}

/* ------------------------------------------------------------------ jobs */

export const RETRYABLE = new Set(["failed", "dead", "needs_review", "cancelled"]);
// Payment statuses of a billed job that still owes its price (payments/status.py OWED).
export const OWED = new Set(["not_configured", "link_pending", "unpaid", "payment_failed"]);
export const CANCELLABLE = new Set(["queued", "processing", "failed"]);
export const JOBS_CHANGED = "echopilot:jobs-changed";

/** Tell the jobs table (and whoever listens) that a job changed. */
export function jobsChanged() {
  document.dispatchEvent(new CustomEvent(JOBS_CHANGED));
}

/** A priced job that is not billed: payment_status "na" (needs review, offline provider). */
export function notBilled(job) {
  return job.payment_status === "na" && job.price_usd !== null && job.price_usd !== undefined;
}

/** Why a priced job is not billed, for the price's tooltip. */
export function notBilledReason(job) {
  if (job.provider === "offline") return "Not billed: the offline provider is not a model.";
  if (job.status === "needs_review") return "Not billed: needs review (approve it to bill it).";
  return "Not billed.";
}

/** The key prompt of a page (the dashboard's or the docs'): shows it with a message. */
export function promptForKey(message, kind) {
  show($("login"), true);
  const msg = $("login-msg");
  msg.textContent = message || "";
  msg.className = "form-msg " + (kind || "error");
  show(msg, Boolean(message));
  $("login-key").focus();
}

/** The sentence for a key the server refused, by status. */
export function keyRefused(err) {
  if (err.status === 401) return "That key was not accepted. Check DASHBOARD_KEY or var/dashboard.key.";
  if (err.status === 429) return "Too many attempts: wait a few minutes, then try again.";
  return "Could not check the key: " + err.message;
}

/* ------------------------------------------------------------------ panel helpers */

export function notYet(release) {
  return el("p", {
    className: "not-yet",
    text: "Not available yet: arrives with the " + release + " release",
  });
}

/** A panel's error line: shows err.message (not for a refused key: the prompt says it). */
export function panelError(node, err) {
  if (err && reportable(err)) setMsg(node, err.message, "error");
}

/** fn(), or `fallback` when an answer's shape is not the one expected. */
export function safely(fn, fallback) {
  try {
    return fn();
  } catch (_) {
    return fallback;
  }
}

/** A short, readable line from a result object (scalars shown, lists counted). */
export function summarize(value) {
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

/** A result object as indented "key: value" lines, for an output box. */
export function describe(value, depth) {
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
