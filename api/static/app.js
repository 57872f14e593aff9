// polyfit's dashboard, shared by its four pages (each has its own script beside this one):
// the API's token kept in this browser's session, the calls every page makes, one way of
// staying live (polling that backs off and pauses in hidden tabs), and small SVG charts.
// Every value from the API goes into a page as text or an attribute, never as HTML. An ES
// module: the page scripts import what they use.

const TOKEN_KEY = "polyfit-token";
const SVG = "http://www.w3.org/2000/svg";

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// A new element with these properties and children; strings become text nodes.
export function element(tag, properties = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, properties);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// The rows of a table body, replaced: each row a list of cells (nodes or strings).
export function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => element("tr", {}, ...cells.map(
    (cell) => (cell instanceof Node && cell.nodeName === "TD" ? cell : element("td", {}, cell))))));
}

export function link(href, label, className = "") {
  return element("a", { href, className }, label);
}

export function stateCell(state) {
  return element("td", { className: `state state-${state}` }, state);
}

// Every page starts here: with a token, run the page; without one, ask for it.
export function start(page) {
  if (token()) { page(); return; }
  const input = element("input", { type: "password", id: "token", required: true, autocomplete: "current-password" });
  const refusal = element("p", { className: "error", id: "login-error", role: "alert" });
  const form = element("form", { className: "login", id: "login" },
    element("label", {}, "API token ", input), element("button", { type: "submit" }, "Sign in"), refusal);
  document.querySelector("main").replaceChildren(form);
  input.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const given = input.value.trim();
    const answer = await fetch("/api/jobs?limit=1", { headers: { Authorization: `Bearer ${given}` } });
    if (answer.status === 401) {
      refusal.textContent = "That token is not accepted.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, given);
    location.reload();
  });
}

// A call to the API with the token: its JSON, or an Error with the API's one-line reason.
export async function api(path, options = {}) {
  const answer = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (answer.status === 401) { sessionStorage.removeItem(TOKEN_KEY); location.reload(); }
  const type = answer.headers.get("content-type") || "";
  const body = type.includes("json") ? await answer.json() : null;
  if (!answer.ok) {
    const detail = body && body.detail;
    const reason = Array.isArray(detail)
      ? detail.map((e) => `${e.loc.slice(1).join(".") || "request"}: ${e.msg}`).join("; ")
      : (detail || answer.statusText);
    throw new Error(reason);
  }
  return body;
}

export const DONE = Symbol("done");
export const FINISHED = ["succeeded", "failed", "cancelled"];  // a job's or sweep's last states

// Fills each <select data-choices="field"> under `root` with the values /api/choices gives
// that field (after any option the page put first); returns the choices.
export async function fillChoices(root = document) {
  const choices = await api("/api/choices");
  for (const select of root.querySelectorAll("select[data-choices]")) {
    for (const value of choices[select.dataset.choices]) select.add(new Option(value, value));
  }
  return choices;
}

// Keeps a page live: calls refresh() at once, then again every `fastest` ms while what it
// returns keeps changing, doubling the wait up to `slowest` while it does not (or while the
// API fails: onError hears why); nothing while the tab is hidden, at once when it shows again.
// Stops when refresh returns DONE.
export function poll(refresh, { fastest = 1000, slowest = 16000, onError = () => {} } = {}) {
  let wait = fastest, last = null, timer = null, busy = false, done = false;
  async function tick() {
    timer = null;
    if (busy || done || document.hidden) return;
    busy = true;
    let seen = null;
    try {
      seen = await refresh();
      onError(null);
    } catch (error) {
      onError(error);
    }
    busy = false;
    if (seen === DONE) { done = true; return; }
    const fingerprint = seen === null ? null : JSON.stringify(seen);
    wait = fingerprint !== null && fingerprint !== last ? fastest : Math.min(2 * wait, slowest);
    if (fingerprint !== null) last = fingerprint;
    if (!document.hidden) timer = setTimeout(tick, wait);
  }
  document.addEventListener("visibilitychange", () => {
    clearTimeout(timer);
    timer = null;
    if (!document.hidden) { wait = fastest; tick(); }
  });
  tick();
}

export function text(value, digits = 6) {
  if (value === null || value === undefined) return "—";
  return typeof value === "number" ? Number(value.toPrecision(digits)).toString() : String(value);
}

function svgElement(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// A chart of series [{points: [[x, y], ...], kind, dots, radius, title(point), label}] in an
// <svg class="chart">, with log axes where asked and a legend of the labelled series;
// redraws from scratch.
export function chart(svg, series, { logX = false, logY = false, xLabel = "", yLabel = "" } = {}) {
  const width = 520, height = 300, left = 60, right = 10, top = 10, bottom = 36;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const fx = logX ? Math.log10 : (v) => v, fy = logY ? Math.log10 : (v) => v;
  const usable = (p) => Number.isFinite(fx(p[0])) && Number.isFinite(fy(p[1]));
  const all = series.flatMap((s) => s.points.filter(usable));
  if (!all.length) { svg.replaceChildren(); return; }
  let [x0, x1] = [Math.min(...all.map((p) => fx(p[0]))), Math.max(...all.map((p) => fx(p[0])))];
  let [y0, y1] = [Math.min(...all.map((p) => fy(p[1]))), Math.max(...all.map((p) => fy(p[1])))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (v) => (left + ((fx(v) - x0) / (x1 - x0)) * (width - left - right)).toFixed(1);
  const sy = (v) => (top + (1 - (fy(v) - y0) / (y1 - y0)) * (height - top - bottom)).toFixed(1);
  const label = (v, log) => text(log ? 10 ** v : v, 3);
  const middle = (top + height - bottom) / 2;
  const nodes = [
    svgElement("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }),
    svgElement("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }),
    svgElement("text", { x: left, y: height - bottom + 14 }, label(x0, logX)),
    svgElement("text", { x: width - right, y: height - bottom + 14, "text-anchor": "end" }, label(x1, logX)),
    svgElement("text", { x: left - 4, y: height - bottom, "text-anchor": "end" }, label(y0, logY)),
    svgElement("text", { x: left - 4, y: top + 10, "text-anchor": "end" }, label(y1, logY)),
    svgElement("text", { x: (left + width) / 2, y: height - 4, "text-anchor": "middle" }, xLabel),
    svgElement("text", { x: 12, y: middle, "text-anchor": "middle", transform: `rotate(-90 12 ${middle})` }, yLabel),
  ];
  series.filter((s) => s.label).forEach((s, i) => {
    const y = top + 12 + 14 * i;
    nodes.push(svgElement("line", { class: s.kind, x1: width - right - 110, y1: y - 4, x2: width - right - 92, y2: y - 4 }),
      svgElement("text", { x: width - right - 88, y }, s.label));
  });
  for (const s of series) {
    const points = s.points.filter(usable);
    if (s.dots) {
      nodes.push(...points.map((p) => svgElement("circle", { class: s.kind, cx: sx(p[0]), cy: sy(p[1]), r: s.radius || 2 },
        svgElement("title", {}, s.title ? s.title(p) : ""))));
    } else if (points.length) {
      nodes.push(svgElement("polyline", { class: s.kind, points: points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" ") }));
    }
  }
  svg.replaceChildren(...nodes);
}
