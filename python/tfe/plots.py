"""Figures like the paper's: training curves (Fig. 5/6), the confusion matrices and the
contact sheet of images that one model gets right and the other wrong (Fig. 7); and, for
the synthetic data, a few of its people across the expressions."""

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
    """Row-normalised test confusion of the baseline and of TFE-JL side by side, over the
    test splits of all runs together, with each class's accuracy in its row label."""
    from .comparison import confusion, pooled

    panels = [(name, pooled(runs, name)) for name in ("baseline", "tfe_jl")]
    panels = [(name, pool) for name, pool in panels if pool is not None]
    k = len(classes)
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 5))
    axes = np.atleast_1d(axes)
    for ax, (name, (labels, preds)) in zip(axes, panels):
        m = confusion(labels, preds, k).astype(np.float64)
        rows = m.sum(1, keepdims=True)
        m = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), [f"{c} ({100 * m[i, i]:.0f} %)" for i, c in enumerate(classes)])
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted")
        acc = 100.0 * float((labels == preds).mean())
        ax.set_title(f"{'baseline' if name == 'baseline' else 'TFE-JL'}: {acc:.1f} % "
                     f"of {len(labels)} test images")
    axes[0].set_ylabel("true (class accuracy)")
    fig.subplots_adjust(wspace=0.45)
    if synthetic:
        fig.suptitle("SYNTHETIC DATA")
    _save(fig, path)


def plot_contact_sheet(fixed, broken, classes, path, synthetic, per_side=24, seed=0):
    """The paper's Fig. 7: test images the baseline gets wrong and TFE-JL right (left) and
    the reverse (right), each captioned true / baseline / TFE-JL. Up to ``per_side``
    images per side, drawn at random (seeded) when there are more. It shows the data
    set's faces: it belongs to the run folder, never to a repository."""
    rng = np.random.default_rng(seed)
    cols = 6
    sides = [(title, [items[i] for i in sorted(rng.choice(len(items), min(per_side,
                                                               len(items)), replace=False))])
             for title, items in ((f"baseline wrong, TFE-JL right ({len(fixed)})", fixed),
                                  (f"baseline right, TFE-JL wrong ({len(broken)})", broken))]
    rows = max(1, max((len(items) + cols - 1) // cols for _, items in sides))
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2 * cols * 1.3, rows * 1.6 + 0.6),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for s, (title, items) in enumerate(sides):
        axes[0, s * cols].set_title(title, loc="left", fontsize=9)
        for n, (image, y, a, b) in enumerate(items):
            ax = axes[n // cols, s * cols + n % cols]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.text(0.5, -0.04, f"{classes[y][:8]}\nB {classes[a][:8]}\nT {classes[b][:8]}",
                    transform=ax.transAxes, ha="center", va="top", fontsize=6)
    fig.suptitle("true / B = baseline / T = TFE-JL" + (" (SYNTHETIC DATA)" if synthetic else ""),
                 fontsize=9)
    _save(fig, path)


def plot_emotions_over_time(x, probs, classes, path, title, xlabel="time (s)"):
    """Each class's probability for the largest face of every frame read (gaps where no
    face was found)."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for k, c in enumerate(classes):
        ax.plot(x, probs[:, k], label=c, lw=1.4)
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("probability")
    ax.set_title(f"{title}: expressions of the largest face")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    _save(fig, path)


def plot_people(grid, classes, row_labels, path, title):
    """One row per person (uint8 grid [P, C, H, W]), one column per expression class."""
    P, C = grid.shape[:2]
    fig, axes = plt.subplots(P, C, figsize=(1.25 * C, 1.4 * P + 0.4), squeeze=False)
    for i in range(P):
        for j in range(C):
            ax = axes[i, j]
            ax.imshow(grid[i, j], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(classes[j], fontsize=9)
        axes[i, 0].set_ylabel(row_labels[i], fontsize=7)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
