/*
 * EchoPilot operations dashboard: the entry module (sign in and out, the refresh loop,
 * wiring). Each panel lives in a small module of its own:
 *
 *   core.js        DOM helpers, formatting, the key, the API client, feedback
 *   health.js      health badges, KPI cards, attention chips
 *   charts.js      the four charts of the last 30 days
 *   jobs.js        the jobs table
 *   job-detail.js  the job detail dialog (job-input.js: input and QA breakdown;
 *                  job-review.js: Approve and Reject)
 *   submit.js      the "Submit job" form
 *   panels.js      the feature panels (automations.js, operations.js, brief.js, activity.js)
 *
 * The page's Content-Security-Policy forbids inline scripts and eval: ES modules loaded from
 * the app itself only. The only global is the `EchoPilot` namespace at the end.
 */
import {
  $,
  api,
  auth,
  keyRefused,
  onAuthFailure,
  promptForKey,
  runAction,
  show,
  state,
  toast,
} from "./core.js";
import { loadHealth, loadKpis } from "./health.js";
import { clearCharts, refreshCharts } from "./charts.js";
import { bindJobs, clearJobs, loadJobs } from "./jobs.js";
import { bindDialog, clearDialog } from "./job-detail.js";
import { clearPanels, mountPanelsIfChanged, refreshPanels } from "./panels.js";
import { bindSubmitForm } from "./submit.js";

const LIVE_EVERY_MS = 10000; // health, KPIs, jobs, live panels
const CHARTS_EVERY_MS = 60000;

/* ------------------------------------------------------------------ sign in / out */

function showLogin(message, kind) {
  show($("dashboard"), false);
  show($("sign-out"), false);
  show($("refresh-all"), false);
  promptForKey(message, kind);
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
    showLogin(keyRefused(err));
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
  ["health", "kpis", "jobs-attention"].forEach((id) => $(id).replaceChildren());
  ["kpi-asof", "last-updated"].forEach((id) => ($(id).textContent = ""));
  clearJobs();
  clearDialog();
  clearCharts();
  clearPanels();
}

function handleAuthFailure(err) {
  if (err.status === 401 && auth.get()) {
    signOut("Your key was not accepted (it may have changed). Enter it again.");
  } else if (err.status === 429) {
    toast("Too many failed key attempts: wait a few minutes, then try again.", "error");
  }
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
  mountPanelsIfChanged();
  await Promise.allSettled([loadKpis(), loadJobs({ auto: true }), refreshPanels()]);
  if (state.running) {
    $("last-updated").textContent = "Updated " + new Date().toLocaleTimeString();
  }
}

async function refreshAll() {
  await Promise.allSettled([refreshLive(), refreshCharts()]);
}

/* ------------------------------------------------------------------ wiring */

function bind() {
  onAuthFailure(handleAuthFailure);
  $("login-form").addEventListener("submit", onLogin);
  $("sign-out").addEventListener("click", (ev) => {
    ev.preventDefault();
    signOut();
  });
  $("refresh-all").addEventListener("click", (ev) =>
    runAction(ev.currentTarget, refreshAll, { busyLabel: "Refreshing…", success: () => "" }),
  );
  bindJobs();
  bindDialog();
  bindSubmitForm();
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

// Modules run after the document is parsed.
start();
