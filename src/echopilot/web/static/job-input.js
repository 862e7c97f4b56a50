/*
 * Two sections of the job detail: the job's input (user data: always text, never markup)
 * with "Show all N characters" when the API cut it, and the QA breakdown as a table.
 */
import { api, button, el, fmt, reportable, setMsg } from "./core.js";

// The judge's rubric: criterion and the most it can score.
const RUBRIC = [
  ["clarity", 30],
  ["accuracy", 30],
  ["completeness", 20],
  ["tone", 20],
];

function characters(text) {
  return [...String(text)].length; // code points, as the server counts them
}

/** The input as text; when `input_truncated`, a button fetches the whole of it. */
export function inputSection(job) {
  if (job.input === undefined || job.input === null) return null;
  const total = job.input_chars === undefined ? characters(job.input) : job.input_chars;
  const text = el("pre", { className: "input-text", text: job.input });
  const section = el(
    "section",
    { className: "job-input", attrs: { "aria-label": "Input" } },
    el("h3", { text: "Input" }),
  );
  if (!job.input_truncated) {
    section.append(el("p", { className: "muted small", text: fmt.num(total) + " characters" }), text);
    return section;
  }
  const note = el("p", {
    className: "muted small input-note",
    text: "Showing the first " + fmt.num(characters(job.input)) + " of " + fmt.num(total) + " characters.",
  });
  const msg = el("span", { className: "form-msg", attrs: { role: "status" } });
  const more = button(
    "Show all " + fmt.num(total) + " characters",
    async () => {
      more.disabled = true;
      more.classList.add("is-busy");
      setMsg(msg, "Loading…", "busy");
      try {
        const full = await api("/api/jobs/" + job.id + "?full_input=true");
        text.textContent = full.input;
        note.textContent = "All " + fmt.num(full.input_chars ?? characters(full.input)) + " characters.";
        setMsg(msg, "");
        more.remove();
      } catch (err) {
        if (reportable(err)) setMsg(msg, "Could not load the input: " + err.message, "error");
        more.disabled = false;
        more.classList.remove("is-busy");
      }
    },
    "small show-all-input",
  );
  section.append(el("div", { className: "input-head" }, note, more, msg), text);
  return section;
}

function score(value) {
  const n = Number(value);
  return Number.isFinite(n) ? String(Math.round(n * 10) / 10) : String(value);
}

/** The judge's scores per criterion: criterion, score, out of; null when there are none. */
export function qaBreakdownSection(breakdown) {
  if (!breakdown || typeof breakdown !== "object" || !Object.keys(breakdown).length) return null;
  const known = RUBRIC.filter(([name]) => name in breakdown);
  const others = Object.keys(breakdown)
    .filter((name) => !RUBRIC.some(([k]) => k === name))
    .map((name) => [name, null]);
  const th = (text, className) => el("th", { text, className, attrs: { scope: "col" } });
  const rows = known.concat(others).map(([name, max]) =>
    el(
      "tr",
      { data: { criterion: name } },
      el("th", { text: name, attrs: { scope: "row" } }),
      el("td", { className: "num", text: score(breakdown[name]) }),
      el("td", { className: "num muted", text: max === null ? "—" : String(max) }),
    ),
  );
  const numbers = Object.values(breakdown).map(Number);
  const foot =
    known.length === RUBRIC.length && numbers.every(Number.isFinite)
      ? el(
          "tfoot",
          {},
          el(
            "tr",
            {},
            el("th", { text: "total", attrs: { scope: "row" } }),
            el("td", { className: "num", text: score(numbers.reduce((a, b) => a + b, 0)) }),
            el("td", { className: "num muted", text: "100" }),
          ),
        )
      : null;
  return el(
    "section",
    { className: "qa-breakdown", attrs: { "aria-label": "QA breakdown" } },
    el("h3", { text: "QA breakdown" }),
    el(
      "table",
      { className: "table compact qa-table" },
      el("thead", {}, el("tr", {}, th("criterion"), th("score", "num"), th("out of", "num"))),
      el("tbody", {}, ...rows),
      foot,
    ),
  );
}
