"""One router per resource: jobs, sweeps, health."""
