"""One router per resource: jobs, sweeps, choices (and approaches' defaults), points (CSV
uploads read), health, metrics, and the dashboard's pages."""
