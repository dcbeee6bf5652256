"""Figures like the paper's: training curves (Fig. 5/6) and the confusion matrix."""

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .checkpoint import atomic_write_bytes  # noqa: E402


def _save(fig, path):
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, [buf.getvalue()])


def plot_curves(run, path, synthetic):
    """Train/validation accuracy per epoch of the baseline and the joint stage."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, key, title in ((axes[0], "baseline", "emotion (ResNet)"),
                           (axes[1], "tfe_jl", "joint learning (TFE)")):
        h = run[key]["history"]
        epochs = [r["epoch"] for r in h]
        ax.plot(epochs, [r["train_acc"] for r in h], label="train")
        ax.plot(epochs, [r["val_acc"] for r in h], label="validation")
        best = run[key]["best_epoch"]
        if best:
            ax.axvline(best, color="grey", ls=":", label=f"selected (epoch {best})")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy %")
    axes[1].legend(loc="lower right")
    if synthetic:
        fig.suptitle("SYNTHETIC DATA")
    _save(fig, path)


def plot_confusion(runs, classes, path, synthetic):
    """Row-normalised confusion of TFE-JL on the test splits of all runs together."""
    k = len(classes)
    m = np.zeros((k, k))
    for r in runs:
        if r.get("test_predictions") is None:
            continue
        np.add.at(m, (r["test_labels"], r["test_predictions"]), 1)
    rows = m.sum(1, keepdims=True)
    m = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("TFE-JL test confusion" + (" (SYNTHETIC DATA)" if synthetic else ""))
    _save(fig, path)
