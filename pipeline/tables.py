"""Tables as text: one header, rows of strings and numbers, written as CSV or Markdown."""


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def to_csv(header, rows):
    """Numbers in full precision (repr), so that the file round-trips."""
    lines = [",".join(header)]
    lines += [",".join(repr(value) if isinstance(value, float) else str(value) for value in row) for row in rows]
    return "\n".join(lines) + "\n"


def to_markdown(header, rows):
    """Numbers to 4 significant digits, for reading."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
