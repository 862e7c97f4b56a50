/*
 * The feature panels: one entry per panel with its title, the /api/system feature that
 * enables it, and a mount function (in the panel's own module) that builds the panel and
 * returns an optional refresh(), called on every live tick. Enabling a feature later only
 * needs its route; the panel code is already here.
 */
import { $, el, hasBusy, notYet, state } from "./core.js";
import { mountActivity } from "./activity.js";
import { mountAlerts } from "./alerts.js";
import { mountAutomations } from "./automations.js";
import { mountBrief } from "./brief.js";
import { mountFinance } from "./finance.js";
import { mountNotion } from "./notion.js";
import { mountOperations } from "./operations.js";
import { mountOptimizer } from "./optimizer.js";
import { mountPayments } from "./payments.js";
import { mountReports } from "./reports.js";

const PANELS = {
  automations: {
    id: "panel-automations",
    title: "Automations",
    feature: "scheduler",
    release: "scheduler",
    mount: mountAutomations,
  },
  operations: { id: "panel-operations", title: "Operations", mount: mountOperations },
  alerts: { id: "panel-alerts", title: "Alerts", feature: "alerts", release: "alerts", mount: mountAlerts },
  finance: { id: "panel-finance", title: "Finance", feature: "finance", release: "finance", mount: mountFinance },
  payments: { id: "panel-payments", title: "Payments", feature: "payments", release: "payments", mount: mountPayments },
  brief: { id: "panel-brief", title: "CEO brief", feature: "briefs", release: "briefs", mount: mountBrief },
  notion: { id: "panel-notion", title: "Notion", feature: "notion", release: "Notion", mount: mountNotion },
  reports: {
    id: "panel-reports",
    title: "Daily report",
    feature: "reports",
    release: "reports",
    mount: mountReports,
  },
  optimizer: {
    id: "panel-optimizer",
    title: "Price optimiser",
    feature: "optimizer",
    release: "optimiser",
    mount: mountOptimizer,
  },
  activity: {
    id: "panel-activity",
    title: "Activity",
    feature: "activity",
    release: "activity feed",
    mount: mountActivity,
  },
};

/** (Re)build every panel when the set of features changed since the last look. */
export function mountPanelsIfChanged() {
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

export async function refreshPanels() {
  const jobs = Object.entries(state.panels)
    .filter(([name, refresh]) => refresh && !hasBusy($(PANELS[name].id)))
    .map(([, refresh]) => refresh());
  await Promise.allSettled(jobs);
}

export function clearPanels() {
  Object.values(PANELS).forEach((panel) => $(panel.id).replaceChildren());
  state.panels = {};
  state.featuresSeen = null;
}
