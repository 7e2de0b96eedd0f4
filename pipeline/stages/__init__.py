"""MLflow entry points: each stage is one program, one run (see MLproject)."""

import argparse
import atexit
import os
import signal
import sys

# Before TensorFlow is first imported: keep its C++ start-up chatter off the console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A stage downloads its inputs (data, checkpoints) from the store; against a
# tracking server MLflow would draw a progress bar for each, in every log.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from pipeline import params, workarounds
from pipeline.errors import ParamError, PipelineError

# Before any stage module imports Keras: TensorFlow's native start-up lines,
# which no log level hides, are kept off the console (pipeline.workarounds, 1).
workarounds.quiet_tensorflow_start_up()

# Exit statuses: a shell's for a process ended by SIGINT (130) or SIGTERM (143).
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
RESUMABLE = ("train", "main")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the runs end KILLED, their checkpoints kept."""

    def __init__(self, signum):
        self.signum = signal.Signals(signum)
        super().__init__(f"stopped by {self.signum.name}")


_interrupted = False


def _interrupt(signum, frame):
    # Once is enough: later signals (`mlflow run` follows a Ctrl-C with SIGTERM,
    # and Python may deliver both at once) must not cut short the bookkeeping
    # that marks the runs KILLED.
    global _interrupted
    if _interrupted:
        return
    _interrupted = True
    raise Interrupted(signum)


def command_line(stage, run, argv=None, parse=params.parse, prog=None):
    """Parses `--name value` options for `stage`, checks them all, then runs.

    A bad value, or a bad input file, ends the program with one line on stderr
    and exit status 2, before any work where it can be known before (every
    parameter is); another error the user can act on (a loss that diverged)
    with one line and exit status 1; SIGINT or SIGTERM with the
    shell's 130 or 143. Under `mlflow run`, the entry point's run is then
    FAILED (KILLED for a signal) with the message as its tag `error`, even when
    the stage never got as far as opening it.
    """
    parser = argparse.ArgumentParser(prog=prog or f"python -m pipeline.stages.{stage}")
    for name in params.STAGE_PARAMS[stage]:
        param = params.PARAMS[name]
        parser.add_argument(
            f"--{name}", help=f"{param.help} (default: {param.default})", default=argparse.SUPPRESS
        )
    raw = vars(parser.parse_args(argv))
    workarounds.install()
    # The run `mlflow run` created for this entry point (MLflow unsets the
    # variable when a run ends, so it is read now).
    entry_run_id = os.environ.get("MLFLOW_RUN_ID")
    global _interrupted
    _interrupted = False
    previous_handlers = {name: signal.signal(name, _interrupt) for name in EXIT_SIGNAL}
    try:
        run(**parse(stage, raw))
    except PipelineError as error:
        exit_status = EXIT_BAD_INPUT if isinstance(error, ParamError) else EXIT_FAILED
        _end(f"error: {error}", str(error), "FAILED", exit_status, entry_run_id)
    except KeyboardInterrupt as error:
        from pipeline import tracking

        signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
        line = f"interrupted: {stage} {error or 'stopped by SIGINT'}; its runs are marked KILLED."
        if stage in RESUMABLE and tracking.outermost_run_id:
            line += (f" To continue from the last checkpoint, run it again with the same parameters and "
                     f"resume_from={tracking.outermost_run_id}.")
        _end(line, f"Interrupted: {error or 'stopped by SIGINT'}", "KILLED", EXIT_SIGNAL[signum], entry_run_id)
    finally:
        if not _interrupted:  # as they were, for a caller in the same process
            for name, handler in previous_handlers.items():
                signal.signal(name, handler)


def program(stage, run, parse=params.parse):
    """A stage's `__main__`: `command_line`, then the process ends at once
    with its exit status (see `_exit_now`)."""
    try:
        command_line(stage, run, parse=parse)
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            _exit_now(done.code or 0)
        raise
    _exit_now(0)


def _exit_now(status):
    """Ends the process without Python's interpreter teardown.

    That teardown, destroying every module and TensorFlow's C++ state, took
    seconds after each stage on a 2-core CPU, with all the work done. What
    matters at exit still happens: MLflow's queued asynchronous logging is
    flushed, every atexit handler runs, and the console streams are flushed.
    Under a profiler, tracer or coverage tool, which writes its report after
    the program returns, the exit is Python's usual one.
    """
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(status)
    tracking = sys.modules.get("pipeline.tracking")
    if tracking is not None and tracking.outermost_run_id is not None:
        # Only a process that opened a run has logging queued; flushing in one that
        # did not (a refusal) would create the tracking store just to flush nothing.
        import mlflow

        mlflow.flush_async_logging()
    atexit._run_exitfuncs()  # private, but CPython's own: what a normal exit would run
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _end(line, message, status, exit_status, entry_run_id):
    # Refused before any work: the stage never opened a run (so nothing was recorded but parameters).
    tracking_module = sys.modules.get("pipeline.tracking")
    refused = exit_status == EXIT_BAD_INPUT and (tracking_module is None or tracking_module.outermost_run_id is None)
    if entry_run_id is not None and refused:
        # Left for `mlflow run` to end, then tagged and deleted by a detached process
        # (pipeline.workarounds, 4b): this one exits at once, without loading MLflow.
        workarounds.start_delete_refused(entry_run_id, message)
    elif entry_run_id is not None:  # under `mlflow run`; otherwise there is no run to end, and no MLflow to load
        from pipeline import tracking

        tracking.end_entry_run(entry_run_id, message, status)
    if status == "KILLED" and entry_run_id:
        workarounds.start_keep_killed(entry_run_id)  # `mlflow run` would overwrite KILLED with FAILED
    print(line, file=sys.stderr)
    raise SystemExit(exit_status)
