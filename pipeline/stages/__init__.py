"""MLflow entry points: each stage is one program, one run (see MLproject)."""

import argparse
import os
import sys

# Before TensorFlow is first imported: keep its C++ start-up chatter off the console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline import params
from pipeline.params import ParamError


def command_line(stage, run, argv=None, parse=params.parse):
    """Parses `--name value` options for `stage`, checks them all, then runs.

    A bad value ends the program before any work with one line on stderr and
    exit status 2.
    """
    parser = argparse.ArgumentParser(prog=f"python -m pipeline.stages.{stage}")
    for name in params.STAGE_PARAMS[stage]:
        param = params.PARAMS[name]
        parser.add_argument(
            f"--{name}", help=f"{param.help} (default: {param.default})", default=argparse.SUPPRESS
        )
    raw = vars(parser.parse_args(argv))
    try:
        values = parse(stage, raw)
        run(**values)
    except ParamError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
