"""Reading a user's points from a CSV file of two columns, x and y."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from polyfit.client.errors import InvalidRequest
from polyfit.models import Settings


def read_points(path: str | Path, settings: Settings | None = None) -> dict[str, list[float]]:
    """``{"x": [...], "y": [...]}`` from a CSV file; an optional first line may name columns.

    Refuses, naming the line: missing values, text, a row without exactly two columns,
    fewer than two points, more than POLYFIT_MAX_POINTS rows.
    """
    limit = (settings or Settings()).max_points
    xs: list[float] = []
    ys: list[float] = []
    try:
        with open(path, newline="") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != 2:
                    raise InvalidRequest(f"data: {path} line {line}: expected 2 columns (x,y), "
                                         f"found {len(row)}")
                try:
                    x, y = (float(cell) for cell in row)
                except ValueError:
                    if line == 1 and not xs:
                        continue  # a header
                    raise InvalidRequest(f"data: {path} line {line}: not a number: "
                                         f"{','.join(row)[:60]!r}") from None
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise InvalidRequest(f"data: {path} line {line}: values must be finite")
                if len(xs) >= limit:
                    raise InvalidRequest(f"data: {path} has more than {limit} points "
                                         "(POLYFIT_MAX_POINTS)")
                xs.append(x)
                ys.append(y)
    except OSError as error:
        raise InvalidRequest(f"data: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"data: {path} is not a text CSV file") from None
    if len(xs) < 2:
        raise InvalidRequest(f"data: {path} has {len(xs)} point(s); a fit needs at least 2")
    return {"x": xs, "y": ys}
