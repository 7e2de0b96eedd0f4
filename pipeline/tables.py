"""Tables as text: one header, rows of strings and numbers, written as CSV or Markdown."""

import csv
import io


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def to_csv(header, rows):
    """Numbers in full precision (repr), so that the file round-trips; a cell with a
    comma, a quote or a line break is quoted as the csv module does."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([repr(value) if isinstance(value, float) else value for value in row] for row in rows)
    return out.getvalue()


def to_markdown(header, rows):
    """Numbers to 4 significant digits, for reading."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
