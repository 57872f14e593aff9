"""``polyfit-api``: serve the HTTP API with uvicorn."""

from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def main(host: str, port: int) -> None:
    """Serve polyfit's HTTP API against POLYFIT_REDIS_URL (tokens: POLYFIT_API_TOKENS)."""
    import uvicorn
    from pydantic import ValidationError

    from polyfit.api.main import create_app
    from polyfit.models.request import describe

    try:
        app = create_app()
    except ValidationError as error:
        raise click.UsageError(f"settings: {describe(error)}") from None
    except (ValueError, OSError) as error:
        raise click.UsageError(str(error)) from None
    uvicorn.run(app, host=host, port=port, log_level="info")
