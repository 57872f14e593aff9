"""What ``polyfit-client``'s commands share: the console, the request options and how a
request is built from them, and what waiting does on failure or Ctrl-C."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import click
from pydantic import ValidationError
from rich.console import Console

from polyfit.client.errors import InvalidRequest, PolyfitError
from polyfit.client.status import ExitStatus
from polyfit.models import FitRequest
from polyfit.models.request import Device, Dtype, Optimizer, Target, describe

OUT = Console(highlight=False, soft_wrap=True)


def print_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2))


def seconds(text: str) -> float:
    """A ``--timeout``: a positive number of seconds."""
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{text!r} is not a positive number of seconds")
    return value


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """An age such as ``90s``, ``30m``, ``12h``, ``7d`` or ``2w`` (a bare number is seconds),
    in seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in UNITS else (text, "s")
    try:
        value = float(number) * UNITS[unit]
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{text!r} is not an age such as 7d, 12h or 30m")
    return value


def build_request(request_file: str | None, options: dict[str, Any]) -> FitRequest:
    """The request from ``--request FILE`` (if any), overridden by the options given."""
    fields: dict[str, Any] = {}
    if request_file:
        try:
            fields = json.loads(Path(request_file).read_text())
        except OSError as error:
            raise InvalidRequest(f"request: cannot read {request_file}: {error.strerror}") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidRequest(f"request: {request_file} is not valid JSON ({error})") from None
        if not isinstance(fields, dict):
            raise InvalidRequest(f"request: {request_file} must hold a JSON object")
    fields.update({name: value for name, value in options.items() if value is not None})
    if "approach" not in fields:
        raise InvalidRequest("approach: missing; give --approach NAME or --request FILE")
    try:
        return FitRequest.model_validate(fields)
    except ValidationError as error:
        raise InvalidRequest(describe(error)) from None


@contextmanager
def waiting(what: str, follow: str, stop: str,
            document: Callable[[], dict[str, Any]] | None) -> Iterator[None]:
    """Around a wait: should it fail, print the record as it is (``document``, with --json)
    first; on Ctrl-C say that ``what`` goes on, how to ``follow`` it and ``stop`` it, exit 130."""
    try:
        yield
    except PolyfitError:
        if document:
            print_json(document())
        raise
    except KeyboardInterrupt:
        click.echo(f"stopped waiting; {what} goes on — {follow} or stop it with `{stop}`",
                   err=True)
        sys.exit(ExitStatus.INTERRUPTED)


def request_options(command: Callable) -> Callable:
    """The FitRequest options that submit and sweep share."""
    options = [
        click.option("--device", type=click.Choice(get_args(Device))),
        click.option("--degree", type=int),
        click.option("--target", type=click.Choice(get_args(Target))),
        click.option("--optimizer", type=click.Choice(get_args(Optimizer))),
        click.option("--dtype", type=click.Choice(get_args(Dtype))),
        click.option("--data", "data_file", type=click.Path(dir_okay=False),
                     help="CSV of x,y points (or x,y,sigma: each y's standard deviation, "
                          "weighting the fit by 1/sigma²) to fit instead of a target."),
        click.option("--absolute-sigma", is_flag=True, default=None,
                     help="Take the CSV's sigma as absolute: the covariance is not scaled "
                          "by the reduced chi-square (curve_fit's absolute_sigma)."),
        click.option("--n-points", type=int),
        click.option("--x-min", type=float),
        click.option("--x-max", type=float),
        click.option("--record-every", type=int),
    ]
    for option in reversed(options):
        command = option(command)
    return command
