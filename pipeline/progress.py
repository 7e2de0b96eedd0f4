"""What a running stage says while it works: one compact line per epoch.

On a terminal the line is rewritten in place (a carriage return) and the last
one stays; when the output is a file or a pipe (CI logs, a tuning worker's
log), each epoch gets its own plain line.
"""

import math
import sys
import time


class EpochProgress:
    """`epoch 12/50  train 0.0123  val 0.0101  best 0.0098 (epoch 10)  3.1 s, about 5 s left`.

    Made just before training starts; called after each epoch with the 1-based
    epoch and its losses (a resumed run's first is its checkpoint's next). The
    time left assumes the remaining epochs take as long as this process's so
    far, the first excepted (it includes compiling the model, so its line has
    no estimate); early stopping may end sooner.
    """

    def __init__(self, epochs, stream=None):
        self.epochs, self.first_epoch = epochs, None
        self.stream = stream or sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.perf_counter()
        self.best = (float("inf"), 0)
        self.pending = False  # a live line without its newline yet

    def line(self, epoch, train_loss, val_loss, elapsed):
        if self.first_epoch is None:  # its time includes compiling the model: no estimate from it
            self.first_epoch, self.first_elapsed = epoch, elapsed
        if val_loss < self.best[0]:
            self.best = (val_loss, epoch)
        width = len(str(self.epochs))
        validated = "" if math.isnan(val_loss) else (  # a refit, for epochs chosen beforehand, validates nothing
            f"val {val_loss:.4g}  best {self.best[0]:.4g} (epoch {self.best[1]})  ")
        text = f"epoch {epoch:>{width}}/{self.epochs}  train {train_loss:.4g}  {validated}{elapsed:.1f} s"
        if epoch == self.first_epoch:
            return text
        per_epoch = (elapsed - self.first_elapsed) / (epoch - self.first_epoch)
        return f"{text}, about {per_epoch * (self.epochs - epoch):.0f} s left"

    def __call__(self, epoch, logs):
        text = self.line(epoch, logs["loss"], logs["val_loss"], time.perf_counter() - self.started)
        if self.live:
            self.stream.write(f"\r\033[K{text}")
            self.pending = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        """Ends the live line (training finished, stopped early, or failed)."""
        if self.pending:
            self.stream.write("\n")
            self.stream.flush()
            self.pending = False

    def stopped_early(self, epochs_done, patience, best_epoch, best_val_loss):
        """The line that says training stopped before its last epoch, and which epoch it keeps."""
        self.close()
        self.stream.write(f"stopped early after epoch {epochs_done}/{self.epochs}: no lower validation loss "
                          f"in {patience} epochs; keeping epoch {best_epoch} (val {best_val_loss:.4g})\n")
        self.stream.flush()
