"""Reading a user's points from a CSV file: columns x and y, and optionally sigma."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

from polyfit.client.errors import InvalidRequest
from polyfit.models import Settings


def read_points(path: str | Path, settings: Settings | None = None) -> dict[str, list[float]]:
    """The points of a CSV file, as ``parse_points`` reads them."""
    try:
        with open(path, newline="") as handle:
            return parse_points(handle, str(path), settings)
    except OSError as error:
        raise InvalidRequest(f"data: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"data: {path} is not a text CSV file") from None


def parse_points(lines: Iterable[str], source: str,
                 settings: Settings | None = None) -> dict[str, list[float]]:
    """``{"x": [...], "y": [...]}`` from CSV lines, with ``"sigma"`` when the rows have a
    third column (each y's standard deviation); an optional first line may name the columns
    (``x,y,sigma``). ``source`` names them in errors (a path, an upload).

    Refuses, naming the line: missing values, text, rows of 1 or more than 3 columns or of a
    different width than the first, a sigma that is not positive and finite, fewer than two
    points, more than POLYFIT_MAX_POINTS rows.
    """
    limit = (settings or Settings()).max_points
    columns: list[list[float]] = []
    for line, row in enumerate(csv.reader(lines), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        width = len(columns) or len(row)
        if len(row) != width or width not in (2, 3):
            expected = "2 columns (x,y) or 3 (x,y,sigma)" if not columns else (
                f"{width} columns like the first row")
            raise InvalidRequest(f"data: {source} line {line}: expected {expected}, "
                                 f"found {len(row)}")
        try:
            values = [float(cell) for cell in row]
        except ValueError:
            if line == 1 and not columns:
                continue  # a header
            raise InvalidRequest(f"data: {source} line {line}: not a number: "
                                 f"{','.join(row)[:60]!r}") from None
        if not all(math.isfinite(value) for value in values):
            raise InvalidRequest(f"data: {source} line {line}: values must be finite")
        if width == 3 and not values[2] > 0:
            raise InvalidRequest(f"data: {source} line {line}: sigma must be positive, "
                                 f"not {row[2].strip()}")
        if not columns:
            columns = [[] for _ in values]
        if len(columns[0]) >= limit:
            raise InvalidRequest(f"data: {source} has more than {limit} points "
                                 "(POLYFIT_MAX_POINTS)")
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    count = len(columns[0]) if columns else 0
    if count < 2:
        raise InvalidRequest(f"data: {source} has {count} point(s); a fit needs at least 2")
    return dict(zip(("x", "y", "sigma"), columns, strict=False))
