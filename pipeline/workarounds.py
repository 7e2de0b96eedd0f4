"""Every workaround for an upstream behaviour, in one place.

Each one names the upstream code or issue it answers, the versions it was seen
in, and when it can go; `tests/test_workarounds.py` checks that each upstream
behaviour still exists, so the day one is fixed upstream a test says which
workaround to remove. None is installed by importing this module: the stage
programs call `quiet_tensorflow_start_up` (pipeline/stages/__init__.py) and
`install` (`pipeline.stages.command_line`); the rest are called where used.

Seen with MLflow 3.17.2, TensorFlow 2.21.0, SQLAlchemy 2.x.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

# ---------------------------------------------------------------------------
# 1. TensorFlow's native start-up lines.
#
# Upstream: loading TensorFlow 2.21 writes, from C++ straight to file descriptor 2
# and before it reads TF_CPP_MIN_LOG_LEVEL, lines such as
#     WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
#     I0000 00:00:… port.cc:153] oneDNN custom operations are on. …
#     I0000 00:00:… cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
# and at its first operation without a GPU `E0000 … failed call to cuInit: … (303)`,
# which reads as a failure. Abseil's logging writes every message to stderr until
# absl::InitializeLog() is called, whatever the threshold (abseil/abseil-cpp pull
# request 1957, open; tensorflow/tensorflow pull request 102212, closed unmerged).
# No setting hides them. Remove when `import tensorflow` with TF_CPP_MIN_LOG_LEVEL=2
# prints nothing (test_workarounds: test_tensorflow_still_prints_start_up_lines).
# ---------------------------------------------------------------------------

TENSORFLOW_START_UP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|[IWE]\d{4} [\d:.]+ +\d+ (port|cudart_stub|cuda_platform|cuda_executor|cpu_feature_guard)\.cc:\d+\] "
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"
)


def without_start_up_lines(text):
    return "".join(line for line in text.splitlines(keepends=True) if not TENSORFLOW_START_UP_LINE.match(line))


def _run_captured(load):
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            load()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            sys.stderr.write(without_start_up_lines(capture.read().decode(errors="replace")))
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        def load():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # CUDA's probe (cuInit), else at the first operation

        _run_captured(load)


class _TensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; the real finders locate it
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_start_up():
    """Makes the first `import tensorflow` of this process (keras does it) run
    with descriptor 2 sent to a temporary file, probe the devices there, and
    write back every captured line but the start-up lines: a real error while
    loading still reaches the console. Does nothing once TensorFlow is loaded."""
    if "tensorflow" in sys.modules or any(isinstance(finder, _TensorFlowFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _TensorFlowFinder())


# ---------------------------------------------------------------------------
# 2. SQLite lock waits.
#
# Upstream: MLflow opens every session on a SQLite store with
# `PRAGMA busy_timeout = 20000` (mlflow/store/db/utils.py, make_managed_session),
# so a write waits at most 20 s for another process's lock, then fails with
# "database is locked" and the metric is lost. Runs started side by side against
# one store can hold it longer. We make every SQLite connection wait
# SQLITE_BUSY_TIMEOUT_MS, and rewrite MLflow's statement to the same value.
# Remove when MLflow leaves the timeout to the connection, or makes it
# configurable (test_workarounds: test_mlflow_still_sets_a_20_s_busy_timeout).
# ---------------------------------------------------------------------------

SQLITE_BUSY_TIMEOUT_MS = 120_000


def _wait_for_sqlite_locks(dbapi_connection, connection_record):
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def _keep_waiting_for_sqlite_locks(connection, cursor, statement, parameters, context, executemany):
    if statement.startswith("PRAGMA busy_timeout ="):
        statement = f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};"
    return statement, parameters


def wait_for_sqlite_locks():
    """Every SQLite connection this process opens waits SQLITE_BUSY_TIMEOUT_MS for a lock. Idempotent."""
    import sqlalchemy

    engine = sqlalchemy.engine.Engine
    if not sqlalchemy.event.contains(engine, "connect", _wait_for_sqlite_locks):
        sqlalchemy.event.listen(engine, "connect", _wait_for_sqlite_locks)
    if not sqlalchemy.event.contains(engine, "before_cursor_execute", _keep_waiting_for_sqlite_locks):
        sqlalchemy.event.listen(engine, "before_cursor_execute", _keep_waiting_for_sqlite_locks, retval=True)


# ---------------------------------------------------------------------------
# 3. Two runs logging the same dataset at once.
#
# Upstream: `mlflow.log_input` looks the dataset up in the experiment, then
# inserts it if missing (mlflow/store/tracking/sqlalchemy_store.py, log_inputs),
# without a retry: two runs logging the same dataset at the same moment can both
# find it missing, and the later insert breaks the store's unique key
# (experiment, name, digest). Tried again, the lookup finds the other run's row
# and links this run to it. Remove when log_inputs inserts with an upsert or
# retries (test_workarounds: test_mlflow_still_fails_the_second_of_two_racing_inserts).
# ---------------------------------------------------------------------------

DATASET_INPUT_ATTEMPTS = 3
# How SQLite, PostgreSQL and MySQL word a broken unique key; an `mlflow server` passes it on.
_DUPLICATE_KEY_MESSAGES = ("UNIQUE constraint failed", "duplicate key value violates unique constraint",
                           "Duplicate entry")


def log_input(dataset, context, attempts=DATASET_INPUT_ATTEMPTS):
    """`mlflow.log_input`, tried again (up to `attempts` in all) when another run inserted the same dataset."""
    import mlflow

    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except mlflow.exceptions.MlflowException as error:
            if attempt + 1 == attempts or not any(message in str(error) for message in _DUPLICATE_KEY_MESSAGES):
                raise


# ---------------------------------------------------------------------------
# 4. An interrupted `mlflow run` overwrites KILLED with FAILED.
#
# Upstream: on Ctrl-C, `mlflow run` waits for the stage process to end and then
# calls `_maybe_set_run_terminated(active_run, "FAILED")`
# (mlflow/projects/__init__.py). Its check for a run that already ended,
# `RunStatus.is_terminated(cur_status)`, passes the status string ("KILLED") to a
# function that compares it with status numbers, so it never matches and the
# KILLED the stage set becomes FAILED. docs/upstream/mlflow-run-overwrites-killed.md
# is the bug report. An interrupted stage starts a small detached process that
# waits for that overwrite and puts KILLED back. Remove when the check compares
# like with like (test_workarounds: test_mlflow_run_still_overwrites_a_killed_run).
# ---------------------------------------------------------------------------

KEEP_KILLED_WAIT_S = 60


def keep_killed(run_id, wait_seconds=KEEP_KILLED_WAIT_S):
    """Waits up to `wait_seconds` for run `run_id` to turn FAILED and puts KILLED back; returns whether it did."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if client.get_run(run_id).info.status == "FAILED":
            client.set_terminated(run_id, "KILLED")
            return True
        time.sleep(0.2)
    return False


def start_keep_killed(run_id):
    """`keep_killed` in a detached process, so that the signal to this process group does not reach it."""
    _detached("keep_killed", run_id)


def _detached(command, *arguments):
    subprocess.Popen([sys.executable, "-m", "pipeline.workarounds", command, *arguments],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---------------------------------------------------------------------------
# 4b. A refused `mlflow run` leaves a FAILED run behind.
#
# Upstream: `mlflow run` creates the entry point's run before the program
# starts, and after a failure marks it FAILED (the same `_maybe_set_run_terminated`
# as in 4); a run cannot be deleted before that, or `mlflow run` fails on it.
# A run refused before any work (a bad parameter, a bad file) holds nothing
# but its parameters and the `error` tag: the stage leaves it RUNNING with that
# tag, and a detached process waits for `mlflow run` to mark it FAILED, then
# deletes it (MLflow keeps deleted runs, out of the UI's default view, until
# `mlflow gc`). Remove with 4.
# ---------------------------------------------------------------------------


def delete_refused(run_id, message="", wait_seconds=KEEP_KILLED_WAIT_S):
    """Tags run `run_id` with the refusal's `message` (its `error`), waits up to
    `wait_seconds` for it to end (FAILED, by `mlflow run`), then deletes it, ending it
    FAILED first if nothing did. Returns whether `mlflow run` ended it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if message:
        client.set_tag(run_id, "error", message[:5000])
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if client.get_run(run_id).info.status != "RUNNING":
            client.delete_run(run_id)
            return True
        time.sleep(0.2)
    client.set_terminated(run_id, "FAILED")
    client.delete_run(run_id)
    return False


def start_delete_refused(run_id, message):
    """`delete_refused` in a detached process: it outlives the stage, which exits at once."""
    _detached("delete_refused", run_id, message)


# ---------------------------------------------------------------------------
# 5. The experiment a new run would use.
#
# Upstream: MLflow resolves it (set_experiment, MLFLOW_EXPERIMENT_ID or _NAME, a
# notebook's own, else Default) in the private
# `mlflow.tracking.fluent._get_experiment_id`, with no public equivalent in 3.17.
# Remove when MLflow exposes one (test_workarounds:
# test_mlflow_still_has_no_public_current_experiment_id).
# ---------------------------------------------------------------------------


def current_experiment_id():
    """The id of the experiment `mlflow.start_run` would use now."""
    import mlflow

    return mlflow.tracking.fluent._get_experiment_id()


# ---------------------------------------------------------------------------
# 6. MLflow's warning about a model logged without an input example.
#
# Upstream: `mlflow.pyfunc.log_model` with a signature but no input example warns
# "An input example was not provided when logging the model" (mlflow/pyfunc/__init__.py).
# Our explicit tensor signature is what MLflow would infer from an example, and
# an example trips MLflow issue 16183 (examples of 3-D tensors). Remove when the
# warning goes or an example of shape (-1, -1, 1) logs (test_workarounds:
# test_mlflow_still_warns_about_a_missing_input_example).
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def no_input_example_warning():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example", category=UserWarning)
        yield


# ---------------------------------------------------------------------------
# 7. MLflow's map of every installed distribution, built to check a model's pins.
#
# Upstream: logging a model (mlflow.utils.environment._process_pip_requirements)
# and loading one (mlflow.pyfunc.load_model) call
# `warn_dependency_requirement_mismatches`, whose `_check_requirement_satisfied`
# first maps every installed distribution to its modules
# (requirements_utils._init_packages_to_modules_map over
# importlib.metadata.packages_distributions): 0.6 s of a zero-shot run here,
# once per process, though the map only serves the rare requirement whose
# distribution cannot be found by its name. Our pins are `name==version` of
# distributions found by name: those are checked here against
# importlib.metadata (mlflow against mlflow.__version__, as upstream does); any
# other requirement, and any pin that does not hold, goes to MLflow's own check,
# which warns as before. Remove when upstream builds the map only when a name
# is not found (test_workarounds: test_mlflow_still_maps_every_distribution_to_check_a_pin).
# ---------------------------------------------------------------------------


def _pin_holds(text):
    """Whether requirement `text` is a plain pin, without markers or extras, that the
    installed distribution of that name satisfies; False whenever unsure."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return False
    if requirement.marker or requirement.extras or not requirement.specifier:
        return False
    try:
        if requirement.name == "mlflow":
            import mlflow

            installed = mlflow.__version__
        else:
            installed = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(installed, prereleases=True)


def _checking_pins_first(upstream):
    def warn_dependency_requirement_mismatches(model_requirements):
        unsure = [text for text in model_requirements if not _pin_holds(text)]
        if unsure:
            upstream(unsure)

    warn_dependency_requirement_mismatches.upstream = upstream
    return warn_dependency_requirement_mismatches


def check_pins_first():
    """Installs workaround 7 in the two MLflow modules that call the check (once; called
    where a model is logged or loaded, so that programs that do neither never import them)."""
    import mlflow.pyfunc
    import mlflow.utils.environment

    for module in (mlflow.utils.environment, mlflow.pyfunc):
        current = module.warn_dependency_requirement_mismatches
        if not hasattr(current, "upstream"):
            module.warn_dependency_requirement_mismatches = _checking_pins_first(current)


def install():
    """What every stage program needs before it opens a run: SQLite lock waits (2)."""
    wait_for_sqlite_locks()


if __name__ == "__main__":
    commands = {"keep_killed": keep_killed, "delete_refused": delete_refused}
    if len(sys.argv) >= 3 and sys.argv[1] in commands:
        commands[sys.argv[1]](*sys.argv[2:])
    else:
        sys.exit("usage: python -m pipeline.workarounds keep_killed <run id> | delete_refused <run id> [message]")
