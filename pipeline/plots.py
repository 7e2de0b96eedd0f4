"""Figures: each function takes arrays and returns a matplotlib Figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def loss_curve(train_loss, val_loss, best_epoch, ylabel="MSE"):
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = np.arange(1, len(train_loss) + 1)
    ax.plot(epochs, train_loss, label="train")
    ax.plot(epochs, val_loss, label="validation")
    ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    ax.set(yscale="log", xlabel="epoch", ylabel=ylabel, title="Loss per epoch")
    ax.legend()
    fig.tight_layout()
    return fig


def predictions(t_train, y_train, pred_train, t_test, y_test, pred_test, zoom=60, band=None):
    """The seed tutorial's figure done right: one-step forecasts against the truth,
    over the training windows and the held-out test windows that follow them,
    and below it the first `zoom` test windows up close. `band`: (lower, upper)
    of the prediction interval over the test windows, shaded."""
    fig, (overview, close) = plt.subplots(2, 1, figsize=(11, 7))
    for ax, stop in ((overview, None), (close, zoom)):
        if band is not None:
            ax.fill_between(t_test[:stop], band[0][:stop], band[1][:stop], color="tab:orange", alpha=0.25,
                            linewidth=0, label="prediction interval")
        ax.plot(t_test[:stop], y_test[:stop], color="black", linewidth=1, label="truth")
        ax.plot(t_test[:stop], pred_test[:stop], color="tab:orange", linestyle="--", label="forecast (test)")
        ax.set(xlabel="time", ylabel="value")
    overview.plot(t_train, y_train, color="black", linewidth=1)
    overview.plot(t_train, pred_train, color="tab:blue", linestyle="--", label="forecast (train)")
    overview.axvspan(t_test[0], t_test[-1], color="tab:orange", alpha=0.08, label="test period")
    overview.set_title("One-step forecasts")
    overview.legend(loc="upper right")
    close.plot(t_test[:zoom], pred_test[:zoom], "o", color="tab:orange", markersize=3)
    close.set_title(f"The first {min(zoom, len(t_test))} test windows")
    fig.tight_layout()
    return fig


def residuals(t_test, residual):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    left.plot(t_test, residual, linewidth=1)
    left.axhline(0, color="grey", linewidth=0.8)
    left.set(xlabel="time", ylabel="forecast − truth", title="Test residuals")
    right.hist(residual, bins=30, orientation="horizontal")
    right.set(xlabel="count", title="Distribution")
    fig.tight_layout()
    return fig


def free_run(t_context, context, t_future, truth, forecast):
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(t_context, context, color="grey", label="last input window")
    ax.plot(t_future, truth, color="black", linewidth=1, label="true continuation")
    ax.plot(t_future, forecast, color="tab:red", linestyle="--", label="free-running forecast")
    ax.set(
        xlabel="time",
        ylabel="value",
        title=f"Free-running forecast: {len(forecast)} steps, each fed back as input",
    )
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def forecast_fan(t_truth, truth, fans):
    """Multi-step forecasts from a few test origins against the truth.

    `fans` is a list of (times, forecast, lower, upper), one per origin.
    """
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.plot(t_truth, truth, color="black", linewidth=1, label="truth")
    for number, (times, forecast, lower, upper) in enumerate(fans):
        ax.fill_between(times, lower, upper, color="tab:red", alpha=0.15, linewidth=0,
                        label="prediction intervals" if number == 0 else None)
        ax.plot(times, forecast, "o-", markersize=3, color="tab:red", alpha=0.8,
                label="forecasts from test origins" if number == 0 else None)
    ax.set(xlabel="time", ylabel="value", title=f"{len(fans[0][1])}-step forecasts from {len(fans)} test origins")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


GATE_TITLES = {
    "f": "forget gate f",
    "i": "input gate i",
    "c_tilde": "candidate C̃",
    "o": "output gate o",
    "c": "cell state C",
    "h": "hidden state h",
}


def gate_activations(activations, window):
    """Heat maps (unit × time step) of every gate for one input window."""
    fig, axes = plt.subplots(
        len(GATE_TITLES) + 1, 1, figsize=(10, 13), sharex=True,
        gridspec_kw={"height_ratios": [1] + [2] * len(GATE_TITLES)},
    )
    axes[0].plot(np.asarray(window).ravel(), color="black")
    axes[0].set(ylabel="input", title="Gate activations over one test window")
    for ax, (name, title) in zip(axes[1:], GATE_TITLES.items()):
        values = activations[name].T
        bounded = name in ("f", "i", "o")
        image = ax.imshow(
            values, aspect="auto", interpolation="nearest",
            cmap="viridis" if bounded else "RdBu_r",
            vmin=0 if bounded else -np.abs(values).max(),
            vmax=1 if bounded else np.abs(values).max(),
        )
        ax.set(ylabel="unit", title=title)
        fig.colorbar(image, ax=ax, pad=0.01)
    axes[-1].set_xlabel("time step")
    fig.tight_layout()
    return fig


def metric_by_parameter(values, metric, metric_name):
    """One panel per parameter: the metric of each trial against its value.

    `values` maps each parameter to the trials' values (as logged strings)."""
    fig, axes = plt.subplots(1, len(values), figsize=(4.5 * len(values), 4), squeeze=False)
    for ax, (name, raw) in zip(axes[0], values.items()):
        try:
            x = np.asarray(raw, dtype=float)
            ax.set_xscale("log" if x.min() > 0 and x.max() / x.min() >= 10 else "linear")
        except ValueError:
            x = np.asarray(raw)
        ax.plot(x, metric, "o", color="tab:blue")
        ax.set(xlabel=name, ylabel=metric_name, yscale="log", title=f"{metric_name} by {name}")
    fig.tight_layout()
    return fig


def loss_curves(curves):
    """Every trial's validation loss per epoch on one chart; `curves` maps a
    trial's name to (epochs, losses)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, (epochs, losses) in curves.items():
        ax.plot(epochs, losses, label=name)
    ax.set(xlabel="epoch", ylabel="validation MSE", yscale="log", title="Validation loss of every trial")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def series_grid(collection, forecasts, per_series, horizon, reference="auto_theta", context=3):
    """Six series of a collection: the two where the LSTM's sMAPE is lowest
    relative to `reference`'s, two at the median, two at the highest; each with
    its last points, the test targets, the LSTM's forecast and interval and the
    reference's forecast."""
    lstm = per_series[per_series.forecaster == "lstm"]["smape"].to_numpy()
    other = per_series[per_series.forecaster == reference]["smape"].to_numpy()
    ratio = (lstm + 1e-9) / (other + 1e-9)
    order = np.argsort(ratio, kind="stable")
    picks = np.unique(np.r_[order[:2], order[len(order) // 2 - 1:len(order) // 2 + 1], order[-2:]])
    labels = {i: ("best", "median", "worst")[min(2, 3 * list(order).index(i) // len(order))] for i in picks}
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), squeeze=False)
    for ax, i in zip(axes.ravel(), picks):
        series = collection.series(i)
        shown = series[-(context * horizon + horizon):]
        t = np.arange(len(series))[-len(shown):]
        future = t[-horizon:]
        ax.plot(t, shown, color="black", linewidth=1, label="series")
        ax.fill_between(future, forecasts["lstm"]["lower"][i], forecasts["lstm"]["upper"][i], color="tab:orange",
                        alpha=0.25, linewidth=0, label="LSTM interval")
        ax.plot(future, forecasts["lstm"]["forecast"][i], color="tab:orange", linestyle="--", label="LSTM")
        if reference in forecasts:
            ax.plot(future, forecasts[reference]["forecast"][i], color="tab:blue", linestyle=":", label=reference)
        ax.set_title(f"{collection.ids[i]} ({labels[i]}): sMAPE {lstm[i]:.1f} vs {other[i]:.1f}", fontsize=9)
    for ax in axes.ravel()[len(picks):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Test forecasts: best, median and worst sMAPE of the LSTM relative to {reference}")
    fig.tight_layout()
    return fig


def smape_distribution(per_series):
    """Each forecaster's per-series sMAPE, as box plots side by side."""
    names = list(dict.fromkeys(per_series.forecaster))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.boxplot([per_series[per_series.forecaster == name]["smape"].to_numpy() for name in names], showfliers=False)
    ax.set_xticks(np.arange(1, len(names) + 1), names)
    means = [per_series[per_series.forecaster == name]["smape"].mean() for name in names]
    ax.plot(np.arange(1, len(names) + 1), means, "o", color="tab:red", label="mean")
    ax.set(ylabel="sMAPE per series (%)", title="Per-series sMAPE on the test targets")
    ax.legend()
    fig.tight_layout()
    return fig


def future_grid(collection, future, context=3, count=6):
    """The first `count` series of a collection: the newest points and the served
    model's forecast of what comes after them, with its interval."""
    horizon = future["forecast"].shape[1]
    picks = range(min(count, len(collection)))
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), squeeze=False)
    for ax, i in zip(axes.ravel(), picks):
        series = collection.series(i)
        shown = series[-context * horizon:]
        t = np.arange(len(series))[-len(shown):]
        ahead = len(series) + np.arange(horizon)
        ax.plot(t, shown, color="black", linewidth=1, label="series")
        ax.fill_between(ahead, future["lower"][i], future["upper"][i], color="tab:orange", alpha=0.25, linewidth=0,
                        label="interval")
        ax.plot(ahead, future["forecast"][i], color="tab:orange", linestyle="--", label="forecast")
        ax.set_title(str(collection.ids[i]), fontsize=9)
    for ax in axes.ravel()[len(picks):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("The future: the served model (trained on every point) forecasts past each series' end")
    fig.tight_layout()
    return fig


def future_of_series(series, future, context=None):
    """A series' newest points and the served model's forecast of what follows, with its interval."""
    horizon = len(future)
    context = context or max(4 * horizon, 48)
    shown = series[-context:]
    t = np.arange(len(series))[-len(shown):]
    ahead = len(series) + np.arange(horizon)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, shown, color="black", linewidth=1, label="series")
    ax.fill_between(ahead, future["lower"], future["upper"], color="tab:orange", alpha=0.25, linewidth=0,
                    label="interval")
    ax.plot(ahead, future["forecast"], color="tab:orange", linestyle="--", marker=".", label="forecast")
    ax.set(xlabel="time step", title="The future: the served model forecasts past the series' end")
    ax.legend()
    fig.tight_layout()
    return fig
