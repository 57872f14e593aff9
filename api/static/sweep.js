// One sweep: its members best first with their final loss, AIC and BIC, charted against
// degree when the sweep varies the degree and against learning rate when it varies that.
import { DONE, FINISHED, api, chart, element, fillRows, link, poll, start, stateCell, text } from "./app.js";

const byId = (id) => document.getElementById(id);
const distinct = (values) => new Set(values).size;

// The member lowest by `criterion` among those that have it.
function lowest(members, criterion) {
  const scored = members.filter((m) => m[criterion] !== null);
  return scored.length ? scored.reduce((best, m) => (m[criterion] < best[criterion] ? m : best)) : null;
}

function show(sweep) {
  byId("state").textContent = sweep.state;
  byId("state").className = `state state-${sweep.state}`;
  byId("counts").textContent = Object.entries(sweep.counts).filter(([, n]) => n).map(([name, n]) => `${n} ${name}`).join(", ");
  const members = sweep.members;
  const best = { aic: lowest(members, "aic"), bic: lowest(members, "bic") };
  byId("best-criteria").textContent = best.aic
    ? `lowest AIC at degree ${best.aic.degree}, lowest BIC at degree ${best.bic.degree}` : "no AIC or BIC yet";
  fillRows(byId("members"), members.map((m, i) => [
    String(i + 1), link(`/jobs/${encodeURIComponent(m.job_id)}`, m.job_id.slice(0, 12)), String(m.degree),
    text(m.learning_rate), text(m.seed), stateCell(m.state), text(m.final_loss),
    element("td", { className: m === best.aic ? "best" : "" }, text(m.aic)),
    element("td", { className: m === best.bic ? "best" : "" }, text(m.bic)),
  ]));
  const finished = members.filter((m) => m.final_loss !== null);
  const byDegree = [...finished].sort((a, b) => a.degree - b.degree);
  const describe = (m) => `degree ${m.degree}${m.learning_rate === null ? "" : `, learning rate ${text(m.learning_rate)}, seed ${m.seed}`}`;
  byId("degree-figure").hidden = byId("loss-figure").hidden = distinct(members.map((m) => m.degree)) < 2;
  if (!byId("degree-figure").hidden) {
    chart(byId("criteria-chart"), ["aic", "bic"].map((criterion) => ({
      label: criterion.toUpperCase(), kind: criterion,
      points: byDegree.filter((m) => m[criterion] !== null).map((m) => [m.degree, m[criterion]]),
    })), { xLabel: "degree", yLabel: "information criterion" });
    chart(byId("degree-loss-chart"), [{
      kind: "member", dots: true, radius: 4, points: byDegree.map((m) => [m.degree, m.final_loss, m]),
      title: (p) => `${describe(p[2])}: final loss ${text(p[1])}`,
    }], { logY: true, xLabel: "degree", yLabel: "final loss" });
  }
  byId("rate-figure").hidden = distinct(members.map((m) => m.learning_rate)) < 2;
  if (!byId("rate-figure").hidden) {
    chart(byId("members-chart"), [{
      kind: "member", dots: true, radius: 4, points: finished.map((m) => [m.learning_rate, m.final_loss, m]),
      title: (p) => `${describe(p[2])}: final loss ${text(p[1])}`,
    }], { logX: true, logY: true, xLabel: "learning rate", yLabel: "final loss" });
  }
}

start(() => {
  const sweepId = decodeURIComponent(location.pathname.split("/").pop());
  byId("sweep-id").textContent = sweepId;
  poll(async () => {
    const sweep = await api(`/api/sweeps/${encodeURIComponent(sweepId)}`);
    show(sweep);
    return FINISHED.includes(sweep.state) ? DONE : sweep;
  }, { onError: (error) => { byId("error").textContent = error ? error.message : ""; } });
});
