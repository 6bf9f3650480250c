"""The published figures ours are printed beside, the table layout, and confusion plots."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_file

# METS (Li et al. 2023), zero-shot on balanced single-label test sets: accuracy, precision,
# recall, F1 (macro).
METS_PAPER = {
    "ptbxl_superclass": (0.842, 0.694, 0.626, 0.657),
    "ptbxl_form": (0.734, 0.537, 0.503, 0.518),
    "ptbxl_rhythm": (0.746, 0.576, 0.612, 0.593),
    "mitbih": (0.794, 0.680, 0.735, 0.706),
}
# MERL (Liu et al. 2024), zero-shot macro AUROC on PTB-XL's multi-label test sets.
MERL_AUROC = {"superclass": 0.742, "subclass": 0.757, "form": 0.659}

_SINGLE = ("accuracy", "precision", "recall", "f1", "auroc")


def single_label_table(results: dict) -> str:
    """Markdown rows: our five macro metrics and n, then METS's four where it reports them."""
    lines = ["| task | accuracy | precision | recall | F1 | AUROC | n | METS paper (acc / P / R "
             "/ F1) |", "|---|---|---|---|---|---|---|---|"]
    for task, r in results.items():
        paper = METS_PAPER.get(task)
        theirs = " / ".join(f"{v:.3f}" for v in paper) if paper else "-"
        lines.append(f"| {task} | " + " | ".join(_fmt(r[k]) for k in _SINGLE)
                     + f" | {r['n']} | {theirs} |")
    return "\n".join(lines)


def multi_label_table(results: dict) -> str:
    lines = ["| PTB-XL family (multi-label) | macro AUROC | classes | n | MERL zero-shot AUROC |",
             "|---|---|---|---|---|"]
    for family, r in results.items():
        merl = MERL_AUROC.get(family)
        lines.append(f"| {family} | {_fmt(r['auroc'])} | {r['classes']} | {r['n']} | "
                     f"{_fmt(merl) if merl is not None else '-'} |")
    for family, r in results.items():
        if "challenge_score" in r:
            lines.append(f"| Challenge score ({family}) | {_fmt(r['challenge_score'])} | "
                         f"{r['classes']} | {r['n']} | - |")
    return "\n".join(lines)


def retrieval_table(results: dict) -> str:
    lines = ["| ECG -> report retrieval | recall@1 | recall@5 | recall@10 | ECGs | distinct "
             "reports |", "|---|---|---|---|---|---|"]
    for source, r in results.items():
        lines.append(f"| {source} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | "
                     f"{r['recall@10']:.3f} | {r['n']} | {r['reports']} |")
    return "\n".join(lines)


def probe_table(results: dict, sets: dict) -> str:
    """Markdown rows of linear-probe results: per task, metric and encoder, the three label
    fractions."""
    lines = ["| task | metric | encoder | 1% | 10% | 100% |", "|---|---|---|---|---|---|"]
    for task, by_encoder in results.items():
        keys = ("auroc",) if sets[task].multilabel else ("accuracy", "f1", "auroc")
        for key in keys:
            for encoder, by_fraction in by_encoder.items():
                cells = [by_fraction[f][key] for f in ("1%", "10%", "100%")]
                lines.append(f"| {task} | {key} | {encoder} | "
                             + " | ".join(_fmt(v) for v in cells) + " |")
    return "\n".join(lines)


def plot_confusion(confusion: list, names, path: Path, title: str) -> None:
    """A confusion matrix (rows: true class) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.asarray(confusion, dtype=float)
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = 1.2 + 0.75 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(shares, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if shares[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _fmt(value) -> str:
    return "nan" if value != value else f"{value:.3f}"
