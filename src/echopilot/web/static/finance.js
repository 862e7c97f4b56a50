/*
 * The finance panel: the 7- and 30-day figures, money owed with its ageing, the breakdowns
 * by task type, client and model as tables, and a chart of margin per task type. Every
 * figure comes from GET /api/finance-metrics, exact decimal strings formatted here only.
 */
import { DASH, api, el, fmt, panelError, setMsg } from "./core.js";
import { plot } from "./charts.js";

const FIGURES = [
  ["Jobs finished", (w) => fmt.num(w.jobs)],
  ["Revenue billed", (w) => fmt.money(w.revenue)],
  ["Revenue paid", (w) => fmt.money(w.revenue_paid)],
  ["Model cost", (w) => fmt.jobCost(w.cost)],
  ["Profit", (w) => fmt.money(w.profit)],
  ["Margin", (w) => fmt.pct(w.margin_pct)],
  ["ROI", (w) => (w.roi === null ? DASH : Number(w.roi).toFixed(2) + "×")],
  ["Average QA", (w) => fmt.qa(w.avg_qa)],
  ["Failure rate", (w) => fmt.pct(w.failure_rate_pct)],
  ["Latency p50 / p95", (w) => fmt.duration(w.latency.p50_ms) + " / " + fmt.duration(w.latency.p95_ms)],
];
const DIMENSIONS = { task_type: "Task type", client: "Client", model: "Model" };
const CHART_ID = "chart-margin-by-type";

function figuresTable(windows) {
  const keys = Object.keys(windows);
  const head = el("tr", {}, el("th", { text: "" }), ...keys.map((k) => el("th", { className: "num", text: k })));
  const rows = FIGURES.map(([label, show]) =>
    el(
      "tr",
      { data: { figure: label } },
      el("th", { scope: "row", text: label }),
      ...keys.map((k) => el("td", { className: "num", text: show(windows[k]) })),
    ),
  );
  return el("table", { className: "table compact finance-figures" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

function breakdownTable(dim, rows) {
  const head = el(
    "tr",
    {},
    ...[DIMENSIONS[dim], "Jobs", "Revenue", "Cost", "Profit", "Margin", "ROI", "QA"].map((t, i) =>
      el("th", { className: i ? "num" : "", text: t }),
    ),
  );
  const body = rows.length
    ? rows.map((r) =>
        el(
          "tr",
          { data: { key: r.key } },
          el("td", { text: r.name || r.key || "(none)" }),
          el("td", { className: "num", text: fmt.num(r.jobs) }),
          el("td", { className: "num", text: fmt.money(r.revenue) }),
          el("td", { className: "num", text: fmt.jobCost(r.cost) }),
          el("td", { className: "num", text: fmt.money(r.profit) }),
          el("td", { className: "num", text: fmt.pct(r.margin_pct) }),
          el("td", { className: "num", text: r.roi === null ? DASH : Number(r.roi).toFixed(2) + "×" }),
          el("td", { className: "num", text: fmt.qa(r.avg_qa) }),
        ),
      )
    : [el("tr", {}, el("td", { className: "muted", attrs: { colspan: "8" }, text: "No finished jobs." }))];
  return el(
    "div",
    { className: "table-wrap" },
    el("table", { className: "table compact finance-breakdown", data: { dim } }, el("thead", {}, head), el("tbody", {}, ...body)),
  );
}

function drawMargins(rows) {
  const priced = rows.filter((r) => r.margin_pct !== null);
  plot(
    CHART_ID,
    [
      {
        type: "bar",
        x: priced.map((r) => r.key),
        y: priced.map((r) => Number(r.margin_pct)),
        marker: { color: priced.map((r) => (Number(r.margin_pct) < 0 ? "#c0392b" : "#2e7d4f")) },
        hovertemplate: "%{x}: %{y:.1f}%<extra>margin</extra>",
      },
    ],
    {
      xaxis: { type: "category", tickformat: "", hoverformat: "" },
      yaxis: { title: { text: "margin %" }, ticksuffix: "%", rangemode: "normal" },
      hovermode: "closest",
    },
    priced.length > 0,
  );
}

export function mountFinance(body) {
  const figures = el("div", { className: "finance-figures-wrap" });
  const owed = el("p", { className: "finance-owed" });
  const choose = el("select", { attrs: { "aria-label": "Breakdown window" } });
  const breakdowns = el("div", { className: "finance-breakdowns" });
  const chart = el("div", {
    className: "chart",
    attrs: { id: CHART_ID, role: "img", "aria-label": "Margin per task type" },
  });
  const notes = el("ul", { className: "plain-list muted small finance-notes" });
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  let last = null;
  choose.addEventListener("change", () => last && showBreakdowns(last));
  body.append(
    figures,
    owed,
    el("div", { className: "panel-actions" }, el("label", { className: "small", text: "Breakdown: " }, choose), msg),
    el("h3", { className: "small", text: "Margin per task type" }),
    chart,
    breakdowns,
    notes,
  );

  function showBreakdowns(data) {
    const w = data.windows[choose.value] || Object.values(data.windows)[0];
    breakdowns.replaceChildren(
      ...Object.keys(DIMENSIONS).map((dim) =>
        el("section", {}, el("h3", { className: "small", text: "By " + DIMENSIONS[dim].toLowerCase() + " (" + w.days + " days)" }), breakdownTable(dim, w.breakdown[dim])),
      ),
    );
    if (window.Plotly) drawMargins(w.breakdown.task_type);
  }

  async function refresh() {
    try {
      const data = await api("/api/finance-metrics");
      last = data;
      const keys = Object.keys(data.windows);
      if (choose.options.length !== keys.length) {
        choose.replaceChildren(...keys.map((k) => el("option", { attrs: { value: k }, text: "last " + data.windows[k].days + " days" })));
        choose.value = keys[keys.length - 1];
      }
      figures.replaceChildren(figuresTable(data.windows));
      const a = data.owed.ageing;
      owed.textContent =
        "Owed: " + fmt.money(data.owed.amount) + " on " + fmt.num(data.owed.jobs) + " jobs (0–7 days " +
        fmt.money(a["0_7d"]) + ", 8–30 days " + fmt.money(a["8_30d"]) + ", over 30 days " + fmt.money(a.over_30d) + ").";
      showBreakdowns(data);
      notes.replaceChildren(...data.notes.map((n) => el("li", { text: n })));
      setMsg(msg, "");
    } catch (err) {
      panelError(msg, err);
      throw err;
    }
  }
  return refresh;
}
