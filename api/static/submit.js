// Submit a fit or a sweep: the form's fields and choices come from the API (/api/choices,
// /api/approaches), the user's CSV is read by the API (/api/points, the CLI's reader).
import { api, fillChoices, start } from "./app.js";

const OPTIONAL = ["steps", "learning_rate", "optimizer", "record_every"];  // null for closed-form approaches
const REPLACED_BY_DATA = ["target", "n_points", "x_min", "x_max"];

// "1-9" or "1,5,10-12" → [1, …]: the CLI's --degrees and --seeds.
function integers(spec) {
  return spec.split(",").map((part) => part.trim()).filter(Boolean).flatMap((part) => {
    const range = /^(\d+)\s*-\s*(\d+)$/.exec(part);
    if (!range) {
      if (!/^\d+$/.test(part)) throw new Error(`not an integer or a range like 1-9: ${part}`);
      return [Number(part)];
    }
    const [first, last] = [Number(range[1]), Number(range[2])];
    if (first > last) throw new Error(`${part} is an empty range (its first value is above its last)`);
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  });
}

function numbers(spec) {
  return spec.split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
    const value = Number(part);
    if (!Number.isFinite(value)) throw new Error(`not a number: ${part}`);
    return value;
  });
}

start(async () => {
  const form = document.getElementById("submit");
  const [defaults] = await Promise.all([api("/api/approaches"), fillChoices(form)]);
  const approach = document.getElementById("approach");
  const error = document.getElementById("error");
  let points = null;  // the user's data, as /api/points read it

  function fill() {
    for (const [name, value] of Object.entries(defaults[approach.value])) {
      const field = form.elements[name];
      if (!field || name === "approach" || field.type === "checkbox") continue;
      field.value = value === null ? "" : value;
      field.disabled = (value === null && OPTIONAL.includes(name)) || (points !== null && REPLACED_BY_DATA.includes(name));
    }
    form.elements.absolute_sigma.disabled = !(points && points.sigma);
  }
  approach.value = new URLSearchParams(location.search).get("approach") || "legendre";
  approach.addEventListener("change", fill);
  fill();

  document.getElementById("data").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    const note = document.getElementById("data-note");
    points = null;
    note.textContent = error.textContent = "";
    if (file) {
      try {
        points = await api("/api/points", { method: "POST", body: await file.text(), headers: { "Content-Type": "text/csv" } });
        note.textContent = `${points.x.length} points read from ${file.name}${points.sigma ? ", each with its sigma" : ""}.`;
      } catch (refusal) {
        error.textContent = refusal.message;
      }
    }
    fill();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const request = { approach: approach.value };
    for (const field of form.elements) {
      if (!field.name || field.name === "approach" || field.disabled || field.value === "") continue;
      request[field.name] = field.type === "checkbox" ? field.checked : field.type === "number" ? Number(field.value) : field.value;
    }
    if (points) request.data = points;
    try {
      const sweep = {
        degrees: integers(document.getElementById("degrees").value),
        learning_rates: numbers(document.getElementById("learning-rates").value),
        seeds: integers(document.getElementById("seeds").value),
      };
      if (Object.values(sweep).some((values) => values.length)) {
        const body = { base: request };
        for (const [name, values] of Object.entries(sweep)) if (values.length) body[name] = values;
        const { sweep_id } = await api("/api/sweeps", { method: "POST", body: JSON.stringify(body) });
        location.href = `/sweeps/${encodeURIComponent(sweep_id)}`;
      } else {
        const { job_id } = await api("/api/jobs", { method: "POST", body: JSON.stringify(request) });
        location.href = `/jobs/${encodeURIComponent(job_id)}`;
      }
    } catch (refusal) {
      error.textContent = refusal.message;
    }
  });
});
