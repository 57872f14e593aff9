// The job list: newest first, filtered by state and approach, kept live.
import { api, element, fillChoices, fillRows, link, poll, start, stateCell, text } from "./app.js";

// Where a job is: its step while it runs; once it ended, how far it got.
function progress(job) {
  if (job.state === "running" && job.progress) return `${job.progress.step + 1}/${job.progress.steps}`;
  if (job.state === "succeeded") return job.steps_run ? `${job.steps_run} steps` : "done";
  if (job.progress) return `stopped at ${job.progress.step + 1}`;
  return "—";
}

start(async () => {
  await fillChoices();
  const updated = document.getElementById("updated");
  async function refresh() {
    const query = new URLSearchParams({ limit: document.getElementById("limit").value });
    for (const name of ["state", "approach"]) {
      const value = document.getElementById(name).value;
      if (value) query.set(name, value);
    }
    const jobs = await api(`/api/jobs?${query}`);
    fillRows(document.getElementById("jobs"), jobs.map((job) => [
      element("td", {}, link(`/jobs/${encodeURIComponent(job.job_id)}`, job.job_id.slice(0, 12)),
        ...(job.sweep_id ? [" ", link(`/sweeps/${encodeURIComponent(job.sweep_id)}`, "sweep", "muted")] : [])),
      job.request.approach, stateCell(job.state), progress(job), text(job.final_loss),
      text(job.fit_seconds, 3), job.submitted_at.replace("T", " ").slice(0, 19),
    ]));
    updated.textContent = `${jobs.length} job(s), live`;
    return jobs;
  }
  document.getElementById("filters").addEventListener("change", refresh);
  poll(refresh, { onError: (error) => { if (error) updated.textContent = `could not list jobs: ${error.message}`; } });
});
