/*
 * The four charts of the last 30 days (plotly.js, served by the app itself).
 *
 * GET /api/metrics/daily has a row per day; a day with no jobs has no data, so its points
 * are null and plotly draws a gap, not a zero.
 */
import { $, api, el, fmt, reportable, state } from "./core.js";

const PLOT_CONFIG = { displayModeBar: false, responsive: true };
const STATUSES = ["queued", "processing", "done", "needs_review", "failed", "dead", "cancelled"];

const STATUS_COLORS = {
  done: "#2f9e6e",
  needs_review: "#d9962b",
  failed: "#e07b39",
  dead: "#d64545",
  cancelled: "#9aa3ad",
  queued: "#4a7fd6",
  processing: "#7d63d1",
};
const REVENUE_COLOR = "#5b8def";
const COST_COLOR = "#e07b39";

const CHARTS = {
  jobs: { id: "chart-jobs", draw: drawJobsChart },
  qa: { id: "chart-qa", draw: drawQaChart },
  money: { id: "chart-money", draw: drawMoneyChart },
  latency: { id: "chart-latency", draw: drawLatencyChart },
};

function cssVar(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

/** A day with no job at all has no data (null: a gap), not zero revenue, profit or QA. */
function hasJobs(day) {
  return Object.values(day.jobs || {}).some((n) => n > 0);
}

/** The series of `days` through `pick`, null on the days without jobs. */
function series(days, pick) {
  return days.map((d) => (hasJobs(d) ? pick(d) : null));
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

export function clearCharts() {
  Object.values(CHARTS).forEach((c) => purgeChart($(c.id)));
}

export function plot(id, traces, layout, hasData) {
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

function showInAll(text, className) {
  Object.values(CHARTS).forEach((c) => $(c.id).replaceChildren(el("p", { className, text })));
}

export async function refreshCharts() {
  if (!state.running || document.hidden) return;
  if (!window.Plotly) {
    showInAll("Charts unavailable: the chart library did not load.", "chart-empty");
    return;
  }
  try {
    const data = await api("/api/metrics/daily?days=30");
    if (!state.running) return;
    state.qaThreshold = data.qa_threshold;
    const days = data.days || [];
    Object.values(CHARTS).forEach((c) => c.draw(c.id, days, data));
  } catch (err) {
    if (reportable(err)) showInAll("Could not load: " + err.message, "chart-empty error");
  }
}

function drawJobsChart(id, days) {
  const x = days.map((d) => d.day);
  const total = days.reduce((n, d) => n + STATUSES.reduce((m, s) => m + (d.jobs[s] || 0), 0), 0);
  const traces = STATUSES.filter((s) => days.some((d) => d.jobs[s] > 0)).map((s) => ({
    type: "bar",
    name: fmt.label(s),
    x,
    y: series(days, (d) => d.jobs[s] || 0),
    marker: { color: STATUS_COLORS[s] },
    hovertemplate: "%{y}<extra>" + fmt.label(s) + "</extra>",
  }));
  plot(id, traces, { barmode: "stack", yaxis: { title: { text: "jobs" } } }, total > 0);
}

function drawQaChart(id, days, data) {
  const x = days.map((d) => d.day);
  const threshold = data.qa_threshold;
  const qa = series(days, (d) => d.avg_qa);
  const traces = [
    {
      type: "scatter",
      mode: "lines+markers",
      name: "average QA",
      x,
      y: qa,
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
  const values = qa.filter((v) => v !== null && v !== undefined);
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

/**
 * Revenue and profit share the left axis (hundreds of dollars); the model cost (often
 * cents) has its own axis on the right, in its own colour, so a day's cost is readable.
 */
function drawMoneyChart(id, days) {
  const x = days.map((d) => d.day);
  const revenue = series(days, (d) => Number(d.revenue));
  const cost = series(days, (d) => Number(d.cost));
  const traces = [
    {
      type: "bar",
      name: "revenue",
      x,
      y: revenue,
      offsetgroup: "revenue",
      marker: { color: REVENUE_COLOR },
      hovertemplate: "%{y:$,.2f}<extra>revenue</extra>",
    },
    {
      type: "bar",
      name: "cost (right axis)",
      x,
      y: cost,
      yaxis: "y2",
      offsetgroup: "cost",
      marker: { color: COST_COLOR },
      hovertemplate: "%{y:$,.2f}<extra>cost</extra>",
    },
    {
      type: "scatter",
      mode: "lines+markers",
      name: "profit",
      x,
      y: series(days, (d) => Number(d.profit)),
      line: { color: STATUS_COLORS.done, width: 2 },
      marker: { size: 4 },
      connectgaps: false,
      hovertemplate: "%{y:$,.2f}<extra>profit</extra>",
    },
  ];
  const profit = traces[2].y;
  const any = [...revenue, ...cost].some((v) => v !== null && v !== 0);
  const grid = cssVar("--grid", "#e6e9ee");
  const [left, right] = moneyRanges([...revenue, ...profit], cost);
  plot(
    id,
    traces,
    {
      barmode: "group",
      margin: { l: 52, r: 52, t: 30, b: 36 },
      yaxis: {
        tickprefix: "$",
        tickformat: ",.0f",
        range: left,
        autorange: false,
        title: { text: "revenue, profit" },
      },
      yaxis2: {
        overlaying: "y",
        side: "right",
        range: right,
        autorange: false,
        tickmode: "auto",
        nticks: 6,
        tickprefix: "$",
        // Two decimals like every amount, unless the costs are so small that ticks would repeat.
        tickformat: right[1] >= 0.06 ? ",.2f" : "",
        showgrid: false,
        zeroline: false,
        linecolor: grid,
        automargin: true,
        color: COST_COLOR,
        title: { text: "model cost", font: { color: COST_COLOR } },
      },
    },
    any,
  );
}

/**
 * The ranges of the left axis (revenue and profit, which may be negative) and of the right
 * one (cost): each fits its own values, and both put zero at the same height.
 */
function moneyRanges(leftValues, costValues) {
  const known = (values) => values.filter((v) => v !== null && Number.isFinite(v));
  const left = known(leftValues);
  const low = Math.min(0, ...left);
  const high = Math.max(0, ...left) || 1;
  const pad = (high - low) * 0.06;
  const leftRange = [low < 0 ? low - pad : 0, high + pad];
  const top = (Math.max(0, ...known(costValues)) || 0.01) * 1.08;
  return [leftRange, [(top * leftRange[0]) / leftRange[1], top]];
}

function drawLatencyChart(id, days) {
  const x = days.map((d) => d.day);
  const seconds = (v) => (v === null || v === undefined ? null : v / 1000);
  const traces = [
    {
      type: "scatter",
      mode: "lines+markers",
      name: "p50",
      x,
      y: series(days, (d) => seconds(d.latency_p50_ms)),
      line: { color: REVENUE_COLOR, width: 2 },
      marker: { size: 4 },
      hovertemplate: "%{y:.1f} s<extra>p50</extra>",
    },
    {
      type: "scatter",
      mode: "lines+markers",
      name: "p95",
      x,
      y: series(days, (d) => seconds(d.latency_p95_ms)),
      line: { color: "#7d63d1", width: 2, dash: "dot" },
      marker: { size: 4 },
      hovertemplate: "%{y:.1f} s<extra>p95</extra>",
    },
  ];
  const any = days.some((d) => d.latency_p50_ms !== null);
  plot(id, traces, { yaxis: { title: { text: "seconds" }, ticksuffix: " s" } }, any);
}
