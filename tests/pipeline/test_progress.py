"""The per-epoch line: plain lines in a log, one line rewritten in place on a terminal."""

import io

from pipeline.progress import EpochProgress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_one_plain_line_per_epoch_when_the_output_is_not_a_terminal():
    out = io.StringIO()
    progress = EpochProgress(50, stream=out)
    # The first epoch compiles the model too: no estimate from it.
    assert progress.line(1, 0.5, 0.4, elapsed=2.0) == "epoch  1/50  train 0.5  val 0.4  best 0.4 (epoch 1)  2.0 s"
    # Worse than the best: the best stays; the time left comes from the epochs since the first.
    assert progress.line(2, 0.3, 0.45, elapsed=2.5) == (
        "epoch  2/50  train 0.3  val 0.45  best 0.4 (epoch 1)  2.5 s, about 24 s left")
    progress(3, {"loss": 0.2, "val_loss": 0.1})
    progress(4, {"loss": 0.1, "val_loss": 0.05})
    progress.close()
    lines = out.getvalue().splitlines()
    assert [line[:11] for line in lines] == ["epoch  3/50", "epoch  4/50"]
    assert "\r" not in out.getvalue() and "best 0.05 (epoch 4)" in lines[1]


def test_a_refit_which_validates_nothing_shows_its_training_loss_alone():
    progress = EpochProgress(40, stream=io.StringIO())
    assert progress.line(1, 0.06, float("nan"), elapsed=1.0) == "epoch  1/40  train 0.06  1.0 s"
    assert progress.line(3, 0.05, float("nan"), elapsed=2.0) == "epoch  3/40  train 0.05  2.0 s, about 18 s left"


def test_a_resumed_run_counts_time_from_its_own_first_epoch():
    progress = EpochProgress(100, stream=io.StringIO())
    assert progress.line(41, 0.1, 0.1, elapsed=10.0).endswith("(epoch 41)  10.0 s")
    assert progress.line(43, 0.1, 0.1, elapsed=12.0).endswith("12.0 s, about 57 s left")


def test_on_a_terminal_the_line_is_rewritten_and_ended_once():
    out = Terminal()
    progress = EpochProgress(3, stream=out)
    for epoch in (1, 2):
        progress(epoch, {"loss": 1.0 / epoch, "val_loss": 1.0 / epoch})
    progress.close()  # stopped early, after epoch 2 of 3
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith(" s left\n") and text.count("\n") == 1


def test_early_stopping_is_announced_with_the_epoch_it_keeps():
    import io

    stream = io.StringIO()
    progress = EpochProgress(50, stream=stream)
    progress(1, {"loss": 1.0, "val_loss": 0.5})
    progress.stopped_early(12, 10, 2, 0.123456)
    assert stream.getvalue().splitlines()[-1] == (
        "stopped early after epoch 12/50: no lower validation loss in 10 epochs; keeping epoch 2 (val 0.1235)")
