"""The worker: ``engine`` fits curves (no Celery, no Redis); ``service`` runs the engine as
Celery tasks on jobs stored in Redis."""
