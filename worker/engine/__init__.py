"""The fitting engine: problems, reports and fits (``fit.py``), one module per approach
(``approaches/``), batched sweeps (``batched/``), replayed and compiled descent, and
``run_fit`` / ``run_sweep``. It imports neither Celery nor Redis: a notebook or a test can
fit without either."""
