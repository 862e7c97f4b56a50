/* The activity panel: the newest audit entries and scheduler runs. */
import { DASH, api, el, fmt, panelError, setMsg } from "./core.js";

export function mountActivity(body) {
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
