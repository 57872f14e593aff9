// One job: its state, its loss history from step 0 and its curve (as it stands while the job
// runs, as fitted once it succeeded), its coefficients and where and when it ran.
import { DONE, FINISHED, api, chart, element, fillRows, poll, start, text } from "./app.js";

const byId = (id) => document.getElementById(id);

function show(job) {
  byId("state").textContent = job.state;
  byId("state").className = `state state-${job.state}`;
  byId("progress").textContent = job.state === "running" && job.progress
    ? `step ${job.progress.step + 1} of ${job.progress.steps}, loss ${text(job.progress.loss)}` : "";
  chart(byId("loss-chart"), [{ points: job.loss_history.map(([step, loss]) => [step + 1, loss]), kind: "loss" }],
    { logY: true, xLabel: "step", yLabel: "loss" });
  byId("live-note").textContent = job.state === "running" ? ", growing live" : "";
  byId("cancel").hidden = FINISHED.includes(job.state);
  byId("formula").textContent = job.formula || "";
  const coefficients = job.coefficients || (job.progress && job.progress.coefficients) || {};
  const errors = (job.statistics && job.statistics.standard_errors) || {};
  fillRows(byId("coefficients"), Object.entries(coefficients).map(
    ([name, value]) => [name, text(value, 8), text(errors[name], 3)]));
  const facts = {
    approach: job.request.approach, device: job.device, worker: job.worker, "fit seconds": text(job.fit_seconds, 4),
    submitted: job.submitted_at, started: job.started_at, finished: job.finished_at,
    "final loss": text(job.final_loss), "optimum loss": text(job.optimum_loss), attempts: job.attempts,
    expires: job.expires_at,
  };
  byId("timings").replaceChildren(...Object.entries(facts).flatMap(
    ([name, value]) => [element("dt", {}, name), element("dd", {}, value === null || value === undefined ? "—" : String(value))]));
  byId("error").textContent = job.error ? `${job.error.type}: ${job.error.message}` : "";
}

async function drawCurve(jobId) {
  const curve = await api(`/api/jobs/${encodeURIComponent(jobId)}/curve`);
  byId("curve-kind").textContent = curve.final ? "fitted" : "current";
  chart(byId("fit-chart"), [
    { points: curve.x.map((x, i) => [x, curve.y[i]]), kind: "data", dots: true, radius: 1.5 },
    { points: curve.grid.map((x, i) => [x, curve.fit[i]]), kind: "fit" },
  ], { xLabel: "x", yLabel: "y" });
}

start(() => {
  const jobId = decodeURIComponent(location.pathname.split("/").pop());
  byId("job-id").textContent = jobId;
  let drawnAt = null;  // the step (or "final") the curve shows
  byId("cancel").addEventListener("click", () => api(`/api/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST" })
    .catch((error) => { byId("error").textContent = error.message; }));
  poll(async () => {
    const job = await api(`/api/jobs/${encodeURIComponent(jobId)}`);
    show(job);
    const at = job.coefficients ? "final" : job.progress && job.progress.coefficients ? job.progress.step : null;
    if (at !== null && at !== drawnAt) {
      await drawCurve(jobId);
      drawnAt = at;
    }
    return FINISHED.includes(job.state) ? DONE : job;
  }, { onError: (error) => { if (error) byId("error").textContent = `could not follow the job: ${error.message}`; } });
});
