"""The errors a user can act on. Each message is one line; the stages print it
without a traceback, tag it on the run as `error` and mark the run FAILED."""


class PipelineError(Exception):
    """Base of the errors whose message tells the user what to change."""


class ParamError(PipelineError, ValueError):
    """A parameter value, a combination of values or an input file that is not allowed."""


class TrackingUnavailable(PipelineError):
    """The tracking server (or the store behind it) cannot answer."""


class TrainingDiverged(PipelineError):
    """The training loss became NaN or infinite."""
