// polyfit's dashboard: the API's token kept in this browser's session, the calls every
// page makes, and small SVG charts. No framework, no build step.
"use strict";

const TOKEN_KEY = "polyfit-token";

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// Every page starts here: with a token, run the page; without one, ask for it.
function start(page) {
  if (token()) { page(); return; }
  const main = document.querySelector("main");
  main.innerHTML = `
    <form class="login" id="login">
      <label>API token <input type="password" id="token" required autocomplete="current-password"></label>
      <button type="submit">Sign in</button>
      <p class="error" id="login-error" role="alert"></p>
    </form>`;
  document.getElementById("token").focus();
  document.getElementById("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const given = document.getElementById("token").value.trim();
    const answer = await fetch("/api/jobs?limit=1", { headers: { Authorization: `Bearer ${given}` } });
    if (answer.status === 401) {
      document.getElementById("login-error").textContent = "That token is not accepted.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, given);
    location.reload();
  });
}

async function api(path, options = {}) {
  const answer = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (answer.status === 401) { sessionStorage.removeItem(TOKEN_KEY); location.reload(); }
  const body = answer.headers.get("content-type")?.includes("json") ? await answer.json() : null;
  if (!answer.ok) {
    const detail = body && body.detail;
    const text = Array.isArray(detail)
      ? detail.map((e) => `${e.loc.slice(1).join(".") || "request"}: ${e.msg}`).join("; ")
      : (detail || answer.statusText);
    throw new Error(text);
  }
  return body;
}

// Server-Sent Events read with fetch (EventSource cannot send the token): calls
// onEvent(name, data) for each event until the stream ends.
async function follow(path, onEvent) {
  const answer = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!answer.ok) throw new Error(`${answer.status} ${answer.statusText}`);
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = /^event: (.*)$/m.exec(block);
      const data = /^data: (.*)$/m.exec(block);
      if (name && data) onEvent(name[1], JSON.parse(data[1]));
    }
  }
}

function text(value, digits = 6) {
  if (value === null || value === undefined) return "—";
  return typeof value === "number" ? Number(value.toPrecision(digits)).toString() : String(value);
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// A chart of series [{points: [[x, y], ...], kind: "fit" | "data" | ..., dots: bool}] in an
// <svg class="chart">, with log axes where asked; returns nothing, redraws from scratch.
function chart(svg, series, { logX = false, logY = false, xLabel = "", yLabel = "" } = {}) {
  const width = 520, height = 300, left = 60, right = 10, top = 10, bottom = 36;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const fx = logX ? Math.log10 : (v) => v, fy = logY ? Math.log10 : (v) => v;
  const usable = (p) => Number.isFinite(fx(p[0])) && Number.isFinite(fy(p[1]));
  const all = series.flatMap((s) => s.points.filter(usable));
  if (!all.length) { svg.innerHTML = ""; return; }
  let [x0, x1] = [Math.min(...all.map((p) => fx(p[0]))), Math.max(...all.map((p) => fx(p[0])))];
  let [y0, y1] = [Math.min(...all.map((p) => fy(p[1]))), Math.max(...all.map((p) => fy(p[1])))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (v) => left + ((fx(v) - x0) / (x1 - x0)) * (width - left - right);
  const sy = (v) => top + (1 - (fy(v) - y0) / (y1 - y0)) * (height - top - bottom);
  const label = (v, log) => text(log ? 10 ** v : v, 3);
  let out = `<line class="axis" x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}"/>
    <line class="axis" x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}"/>
    <text x="${left}" y="${height - bottom + 14}">${label(x0, logX)}</text>
    <text x="${width - right}" y="${height - bottom + 14}" text-anchor="end">${label(x1, logX)}</text>
    <text x="${left - 4}" y="${height - bottom}" text-anchor="end">${label(y0, logY)}</text>
    <text x="${left - 4}" y="${top + 10}" text-anchor="end">${label(y1, logY)}</text>
    <text x="${(left + width) / 2}" y="${height - 4}" text-anchor="middle">${escapeHtml(xLabel)}</text>
    <text x="12" y="${(top + height - bottom) / 2}" text-anchor="middle" transform="rotate(-90 12 ${(top + height - bottom) / 2})">${escapeHtml(yLabel)}</text>`;
  for (const s of series) {
    const points = s.points.filter(usable);
    if (s.dots) {
      out += points.map((p) => `<circle class="${s.kind}" cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="${s.radius || 2}"><title>${escapeHtml(s.title ? s.title(p) : "")}</title></circle>`).join("");
    } else if (points.length) {
      out += `<polyline class="${s.kind}" points="${points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ")}"/>`;
    }
  }
  svg.innerHTML = out;
}
