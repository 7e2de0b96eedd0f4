"""The thin MLflow shell shared by the stages: runs, tags, parameters, lookups."""

import contextlib
import functools
import hashlib
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import mlflow
import mlflow.data
from mlflow.entities import Metric, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from pipeline import data, params, workarounds
from pipeline.errors import ParamError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CODE_PACKAGES = ("custom_layers", "pipeline")

@functools.cache  # the source does not change while a process runs
def code_version():
    """A hash of every source file of the project's packages.

    Unlike a git commit it also changes with uncommitted edits, so a cached
    run is reused only by the very code that produced it.
    """
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# The last run this process opened that was not nested: what `resume_from` takes
# after an interruption.
outermost_run_id = None


@contextlib.contextmanager
def stage_run(stage, run_name=None, description=None, parent_run_id=None, tags=None):
    """Opens the MLflow run of one stage, nested when another run is active
    (or below `parent_run_id`, a run another process owns, such as a study's).

    Under `mlflow run`, the first stage resumes the run that MLflow created for
    the entry point. The run carries the tags `stage` and `code_version`, its
    name (the stage's, unless given), an optional description (shown in the
    UI) and `tags`; if the stage fails, the error message is tagged on it and it
    ends FAILED. A trial the tuner prunes (an exception with `pruned_at_epoch`)
    ends KILLED with that tag.
    """
    global outermost_run_id
    nested = mlflow.active_run() is not None
    all_tags = {"stage": stage, "code_version": code_version(), "mlflow.runName": run_name or stage,
                **(tags or {})}
    if description:
        all_tags["mlflow.note.content"] = description
    # The tags travel with the request that creates the run (or, for the run `mlflow run` made, in one batch).
    with mlflow.start_run(nested=nested, run_name=run_name or stage, tags=all_tags,
                          parent_run_id=None if nested else parent_run_id) as run:
        if not nested:
            outermost_run_id = run.info.run_id
        started = time.perf_counter()
        print(f"{stage}: started (run {run.info.run_id})", flush=True)
        try:
            yield run
            print(f"{stage}: done in {time.perf_counter() - started:.1f} s", flush=True)
        except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM (see pipeline.stages)
            mlflow.set_tag("error", f"Interrupted: {error or 'stopped by SIGINT'}")
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
            raise
        except Exception as error:
            if getattr(error, "pruned_at_epoch", None) is None:
                mlflow.set_tag("error", error_message(error))
                raise
            mlflow.set_tags({"pruned_at_epoch": str(error.pruned_at_epoch),
                             "pruned": f"stopped by the tuner's pruner after epoch {error.pruned_at_epoch}"})
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
            raise
        except BaseException as error:
            mlflow.set_tag("error", error_message(error))
            raise


def error_message(error):
    """The `error` tag: a PipelineError's own one-line message, else the type too."""
    from pipeline.errors import PipelineError

    message = str(error) if isinstance(error, PipelineError) else f"{type(error).__name__}: {error}"
    return message[:5000]


def end_entry_run(run_id, message, status):
    """Marks the run `mlflow run` created for the entry point (MLFLOW_RUN_ID)
    `status` (FAILED, KILLED) with the tag `error`, unless it has ended already
    (a stage's run ends itself). This is how an error found after the stage began,
    before it opened that run, reaches the UI."""
    if run_id is None:
        return
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return
    if RunStatus.is_terminated(RunStatus.from_string(run.info.status)):
        return
    if "error" not in run.data.tags:
        client.set_tag(run_id, "error", message[:5000])
    client.set_terminated(run_id, status)


def explain_store_error(error):
    """A one-line error for a tracking store that refused or could not answer a
    request (a sign-in it asks for, a server or database that is down), or None
    for any other error."""
    from pipeline.errors import TrackingUnavailable

    uri = mlflow.get_tracking_uri()
    text = str(error)

    def status(*codes):  # an HTTP status in the message, not digits of a port or an id
        return any(re.search(rf"(?<![\d.:]){code}(?!\d)", text) for code in codes)

    if status("401") or "Unauthorized" in text or "UNAUTHENTICATED" in text:
        return ParamError(
            f"The tracking server {uri} asks for a sign-in (HTTP 401): export MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD, an account on that server."
        )
    if status("403") or "PERMISSION_DENIED" in text:
        return ParamError(
            f"The tracking server {uri} refused this user (HTTP 403): ask its admin for a permission on the "
            "experiment or model."
        )
    if status("500", "502", "503", "504") or any(sign in text for sign in (
            "Max retries", "Connection refused", "INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE")):
        first = text.strip().splitlines()[0][:160] if text.strip() else type(error).__name__
        return TrackingUnavailable(
            f"The tracking server {uri} cannot answer ({first}): is it running, and its database? "
            "`lstm-server status` says, for a server it started."
        )
    return None


def store_errors_in_one_line(run_function):
    """`run_function`, with a store that refused or could not answer said in one line
    (`explain_store_error`) instead of MLflow's trace."""
    @functools.wraps(run_function)
    def run_once(*args, **values):
        try:
            return run_function(*args, **values)
        except mlflow.exceptions.MlflowException as error:
            explained = explain_store_error(error)
            if explained is None:
                raise
            raise explained from None

    return run_once


def log_params(values):
    """Logs each value in its canonical form, unless the run already has it.

    `mlflow run` logs an entry point's parameters as the user typed them before
    the stage starts, and MLflow forbids changing a logged value: "0" for a
    float stays "0", which means the same number as "0.0".
    """
    logged = mlflow.active_run().data.params  # as fetched when the run started: no other request
    for name, value in values.items():
        if name in logged and params.PARAMS[name].parse(logged[name]) != value:
            raise ParamError(
                f"Parameter `{name}` is already logged on this run as {logged[name]!r}, not {value!r}."
            )
    mlflow.log_params({name: text for name, text in params.formatted(values).items() if name not in logged})


def log_batch(metrics=None, tags=None, step=0):
    """Metrics and tags on the active run in one request (MLflow's log_batch):
    what a stage records at its end, rather than a request for each."""
    timestamp = int(time.time() * 1000)
    MlflowClient().log_batch(
        mlflow.active_run().info.run_id,
        metrics=[Metric(name, float(value), timestamp, step) for name, value in (metrics or {}).items()],
        tags=[RunTag(name, str(value)) for name, value in (tags or {}).items()],
    )


class EpochMetrics:
    """Per-epoch metrics sent to the store at most once every `every` seconds,
    in one asynchronous log_batch request, each value with its own epoch (step)
    and the time it was measured; `flush` sends what is left (at the end of
    training, and after a failure). Against a tracking server every request
    costs a round trip (and with sign-in a password check), and an epoch of
    the seed's workload takes 40 ms: one request per epoch would be most of
    the store's work."""

    def __init__(self, every):
        self.every = every
        self.run_id = mlflow.active_run().info.run_id
        self.pending, self.sent = [], time.monotonic()

    def log(self, values, step):
        timestamp = int(time.time() * 1000)
        self.pending += [Metric(name, float(value), timestamp, step) for name, value in values.items()]
        if time.monotonic() - self.sent >= self.every:
            self.flush(synchronous=False)

    def flush(self, synchronous=True):
        if self.pending:
            MlflowClient().log_batch(self.run_id, metrics=self.pending, synchronous=synchronous)
            self.pending = []
        self.sent = time.monotonic()


def _experiment_id():
    return mlflow.active_run().info.experiment_id


# (tracking URI, experiment, stage, values, tags) -> a reusable run found by this process: a
# FINISHED run does not change, so a study's trials look for their data once.
_reusable_runs = {}


def find_reusable_run(stage, values, tags=None):
    """The newest FINISHED run of `stage` in this experiment made by this code
    version, carrying `tags` (such as the sha256 of an input file), whose logged
    parameters are exactly `values`: the same names, and each logged string
    parsed by its parameter's type equal to the value (so "0" and "0.0" match
    as floats, and an int never fails to match an int). None if there is none."""
    key = (mlflow.get_tracking_uri(), _experiment_id(), stage, repr(sorted(values.items())),
           repr(sorted((tags or {}).items())))
    if key in _reusable_runs:
        return _reusable_runs[key]
    clauses = [f"tags.stage = '{stage}'", f"tags.code_version = '{code_version()}'",
               "attributes.status = 'FINISHED'"]
    clauses += [f"tags.{name} = '{value}'" for name, value in (tags or {}).items()]
    candidates = MlflowClient().search_runs(
        [_experiment_id()], " and ".join(clauses), order_by=["attributes.start_time DESC"]
    )
    for run in candidates:
        logged = run.data.params
        if set(logged) == set(values) and all(
            params.PARAMS[name].parse(logged[name]) == value for name, value in values.items()
        ):
            _reusable_runs[key] = run
            return run
    return None


def newest_finished_run(stage, parameter):
    """The newest FINISHED run of `stage`, for a parameter given as 'auto'."""
    runs = MlflowClient().search_runs(
        [_experiment_id()],
        f"tags.stage = '{stage}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise ParamError(
            f"Received `{parameter}`='auto', but experiment {_experiment_id()} has no "
            f"finished `{stage}` run to take it from: run `mlflow run . -e {stage}` first "
            f"or pass -P {parameter}=<URI>."
        )
    return runs[0]


def interrupted_run(run_id, stage, values):
    """The `stage` run `run_id` that `resume_from` names, checked: it exists, it
    did not finish, and it ran with `values` (all but resume_from itself)."""
    try:
        run = MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ParamError(
            f"Received an invalid value for parameter `resume_from`, expected the id of a {stage} run in "
            f"the store {mlflow.get_tracking_uri()}, got {run_id!r}: no such run."
        ) from None
    if run.data.tags.get("stage") != stage:
        raise ParamError(
            f"Received an invalid value for parameter `resume_from`, expected the id of a {stage} run, "
            f"got {run_id!r}, a {run.data.tags.get('stage', 'non-pipeline')} run."
        )
    if run.info.status == "FINISHED":
        raise ParamError(
            f"Received an invalid value for parameter `resume_from`: run {run_id} FINISHED, there is "
            "nothing to resume; resume a KILLED or FAILED run."
        )
    differing = [
        (name, run.data.params.get(name)) for name, value in values.items()
        if name != "resume_from"
        and (name not in run.data.params or params.PARAMS[name].parse(run.data.params[name]) != value)
    ]
    if differing:
        wanted = " ".join(f"-P {name}={logged}" for name, logged in differing)
        raise ParamError(
            f"Received `resume_from`={run_id}, which ran with other parameters: resume it with the same "
            f"ones ({wanted}), so that it trains the same model to the same number of epochs."
        )
    return run


def run_id_of(uri):
    """The run id in a `runs:/<run id>/...` URI, or None for other URIs."""
    if uri.startswith("runs:/"):
        return uri[len("runs:/"):].split("/", 1)[0]
    return None


# runs:/ URI -> a local copy of an artifact that does not change once logged (a generate_data
# run's data, a train run's model), which this process downloaded or logged: main's train and
# evaluate, and a study's trials, read it from here, not again from the store (against a
# tracking server each file is a request).
_local_copies = {}


def keep_local_copy(uri, path):
    """Remembers a copy of the file `path`, just logged as the artifact `uri` (runs:/...)."""
    folder = Path(tempfile.mkdtemp(prefix="lstm-forecaster-"))
    _local_copies[uri] = str(shutil.copy2(path, folder / Path(path).name))


def download(uri, parameter, reuse=False):
    """Downloads an artifact (file or folder) to a temporary folder. With `reuse`, for an
    artifact that does not change once logged, a copy this process already has is returned."""
    if reuse and Path(_local_copies.get(uri, "/nonexistent")).exists():
        return _local_copies[uri]
    try:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tempfile.mkdtemp(prefix="lstm-forecaster-")
        )
    except Exception as error:  # MLflow raises several types for a bad URI
        raise ParamError(
            f"Received an invalid value for parameter `{parameter}`, expected an artifact "
            f"URI that exists, got {uri!r} ({type(error).__name__}: {error})."
        ) from error
    if reuse and uri.startswith("runs:/"):
        _local_copies[uri] = path
    return path


def load_data(uri):
    """The dataset logged by generate_data at `uri`, checked against its manifest."""
    return data.load_dataset(download(uri, "data_uri", reuse=True))


def log_dataset(dataset, manifest):
    with tempfile.TemporaryDirectory() as folder:
        data.save_dataset(dataset, manifest, folder)
        mlflow.log_artifacts(folder, artifact_path="data")


SINE_PARAMETERS = ("n_samples", "time_steps", "horizon", "noise", "val_fraction", "test_fraction", "seed")

def log_dataset_input(dataset, manifest, split, context):
    """Logs one split of the dataset as an MLflow dataset input of the active run
    (the UI's Datasets column and filter): named for its source and split, with
    the dataset's sha256 (the `data_sha256` tag, shortened) as its digest, and
    as source the CSV file, or for the sine the parameters that generate it. A
    collection is one input: its matrix of series (`split` does not apply)."""
    from mlflow.data.code_dataset_source import CodeDatasetSource

    arrays = {"features": dataset.get(f"x_{split}"), "targets": dataset.get(f"y_{split}")}
    if manifest["source"] == "collection":  # every series, right-aligned in one matrix
        source, name, split = manifest["path"], Path(manifest["path"]).stem, "collection"
        arrays = {"features": dataset["values"], "targets": None}
    elif manifest["source"] == "csv":
        source, name = manifest["path"], f"{Path(manifest['path']).stem}:{manifest['column']}"
    else:
        values = {**manifest["parameters"], "time_steps": manifest["time_steps"]}
        source = CodeDatasetSource({"generator": "pipeline.data.make_sine_dataset",
                                    **{key: str(values[key]) for key in SINE_PARAMETERS}})
        name = "sine"
    with warnings.catch_warnings():
        # A local path could be read as two kinds of file source; both mean the file.
        warnings.simplefilter("ignore", UserWarning)
        logged = mlflow.data.from_numpy(**arrays, source=source, name=f"{name} ({split})",
                                        digest=data.sha256_of_dataset(dataset)[:16])
    workarounds.log_input(logged, context)  # another run may insert the same dataset at once


CHECKPOINTS = "checkpoints"
# A stage's checkpoint reaches the store every this many seconds of training (and at the end, and
# after a failure): a machine lost outright loses at most this much training.
CHECKPOINT_UPLOAD_SECONDS = 30


class CheckpointUploads:
    """Uploads the checkpoint folder to the active run's `checkpoints/` when `every`
    seconds have passed since the last upload (or since training started), and
    whenever `upload` is called: see CHECKPOINT_UPLOAD_SECONDS."""

    def __init__(self, folder, every):
        self.folder, self.every = folder, every
        self.last = time.monotonic()

    def after_epoch(self):
        if time.monotonic() - self.last >= self.every:
            self.upload()

    def upload(self):
        log_checkpoint(self.folder)
        self.last = time.monotonic()


def log_checkpoint(folder):
    """The checkpoint folder's whole files to the active run's `checkpoints/`: not one
    that save_checkpoint is still writing (pipeline.model.PARTIAL_PREFIX), which a signal
    arriving mid-write leaves behind."""
    from pipeline.model import PARTIAL_PREFIX

    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and not path.name.startswith(PARTIAL_PREFIX):
            mlflow.log_artifact(str(path), artifact_path=CHECKPOINTS)


def log_figure(figure, name):
    import matplotlib.pyplot as plt

    mlflow.log_figure(figure, f"plots/{name}.png")
    plt.close(figure)


def ui_command():
    """The command that opens the MLflow UI on the store this run writes to."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"
