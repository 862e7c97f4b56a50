/* The CEO brief panel: the latest brief, and a button to generate one. */
import { DASH, api, button, el, reportable, runAction, summarize } from "./core.js";

export function mountBrief(body) {
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
