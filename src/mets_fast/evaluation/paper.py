"""The published figures ours are printed beside, the table layout, and confusion plots."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_file
from .merl import SETS, published

# METS (Li et al. 2023), zero-shot on balanced single-label test sets: accuracy, precision,
# recall, F1 (macro).
METS_PAPER = {
    "ptbxl_superclass": (0.842, 0.694, 0.626, 0.657),
    "ptbxl_form": (0.734, 0.537, 0.503, 0.518),
    "ptbxl_rhythm": (0.746, 0.576, 0.612, 0.593),
    "mitbih": (0.794, 0.680, 0.735, 0.706),
}
# MERL (Liu et al. 2024), zero-shot macro AUROC on PTB-XL's multi-label test sets, from the
# benchmark's table of published figures (data/merl/published.json).
MERL_AUROC = {family: published()["zeroshot"][0]["auroc"][f"ptbxl_{key}"] / 100
              for family, key in (("superclass", "super"), ("subclass", "sub"),
                                  ("form", "form"))}

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
        if sets[task].challenge is not None:
            keys += ("challenge_score",)
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


def merl_table(result: dict, protocol: str = "zero-shot") -> str:
    """The MERL benchmark as one markdown table: a row per set (test ECGs found, this model's
    macro AUROC, the published figures), then the averages, each saying which sets it
    covers."""
    papers = published()["zeroshot"]
    lines = [f"| MERL set ({protocol}, macro AUROC %) | test ECGs found | this model | "
             + " | ".join(p["model"] for p in papers) + " |",
             "|---|---|---|" + "---|" * len(papers)]
    for task, r in result["sets"].items():
        mine = "-" if r["auroc"] is None else f"{100 * r['auroc']:.1f}"
        found = f"{r['found']:,} of {r['total']:,}" + (f" ({r['note']})" if "no data" in
                                                       r.get("note", "") else "")
        theirs = [_pct(p["auroc"].get(task)) for p in papers]
        lines.append(f"| {task} | {found} | {mine} | " + " | ".join(theirs) + " |")
    over = result["average_over"]
    mine = "-" if result["average"] is None else f"{100 * result['average']:.1f}"
    lines.append(f"| average | {_sets(over)} | {mine} | "
                 + " | ".join(f"{_pct(p['average'])} ({_sets(p['average_over'])})"
                              for p in papers) + " |")
    return "\n".join(lines)


def plot_merl(result: dict, path: Path) -> None:
    """Bars of this model's macro AUROC per MERL set beside MERL's published figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    merl = published()["zeroshot"][0]["auroc"]
    tasks = list(result["sets"])
    x = list(range(len(tasks)))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    mine = [100 * (result["sets"][t]["auroc"] or 0) for t in tasks]
    ax.bar([i - 0.2 for i in x], mine, 0.4, label="this model")
    ax.bar([i + 0.2 for i in x], [merl.get(t, 0) for t in tasks], 0.4, label="MERL (published)")
    ax.set_xticks(x, tasks, rotation=20)
    ax.set_ylim(40, 100)
    ax.set_ylabel("macro AUROC (%)")
    ax.axhline(50, color="grey", lw=0.5)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _sets(names) -> str:
    return "all six" if set(names) == set(SETS) else ", ".join(names) or "none"
