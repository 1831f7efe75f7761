"""CSV text for the files resnet-ft writes (split, history, skipped, misclassified, predictions).

One writer so that every CSV file has the same dialect: comma-separated,
``\\n`` line ends, minimal quoting, a header row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The CSV document with ``header`` then ``rows``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
