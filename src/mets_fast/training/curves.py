"""``curves.png``: the training loss and the zero-shot scores, epoch by epoch."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_file


def plot_curves(metrics: list, path: Path) -> None:
    """Draws the per-epoch `metrics` (metrics.jsonl's objects) into `path` (written
    atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [m["epoch"] for m in metrics]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(epochs, [m["loss"] for m in metrics], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="METS loss")
    tasks = sorted({t for m in metrics for t in m.get("zeroshot", {})})
    for task in tasks:
        for key, style in (("accuracy", "-"), ("f1", "--")):
            values = [m.get("zeroshot", {}).get(task, {}).get(key) for m in metrics]
            right.plot(epochs, [float("nan") if v is None else v for v in values], style,
                       marker="o", label=f"{task} {key}")
    right.set(xlabel="epoch", ylabel="score", title="zero-shot (validation)", ylim=(0, 1))
    if tasks:
        right.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
