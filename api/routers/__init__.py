"""One router per resource: jobs, sweeps, approaches, health, metrics, and the dashboard's
pages."""
