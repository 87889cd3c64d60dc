"""PNG charts of a report (Recall@k, answer figures by question type), when matplotlib (the
`charts` extra) is installed."""

from __future__ import annotations

from pathlib import Path

from rag.evaluation.metrics import RECALL_CURVE


def write_charts(report: dict, folder: Path) -> list[Path]:
    """PNG charts, when matplotlib (the `charts` extra) is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    for old in folder.glob("*.png"):  # a chart of an earlier run into this folder is no chart of this one
        if old.name == "recall_at_k.png" or old.name.startswith("answers_"):
            old.unlink(missing_ok=True)
    written = []
    curves = {name: block for name, block in report["retrieval"].items() if block["overall"]}  # none: no gold
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, block in curves.items():
            ax.plot(RECALL_CURVE, [block["overall"][f"R@{k}"] for k in RECALL_CURVE], marker="o", label=name)
        ax.set(xlabel="k (papers)", ylabel="Recall@k", title=f"Recall@k: {report['suite']}", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "recall_at_k.png", dpi=110)
        plt.close(fig)
        written.append(folder / "recall_at_k.png")
    for name, block in report["answers"].items():
        metrics = ["answered_rate", "citation_precision", "citation_recall", "key_fact_recall", "abstention_recall"]
        types = list(block["by_type"])
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / len(metrics)
        for i, metric in enumerate(metrics):
            ax.bar(
                [x + i * width for x in range(len(types))],
                [block["by_type"][t].get(metric, 0) for t in types],
                width,
                label=metric,
            )
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(types))], types)
        ax.set(ylim=(0, 1.05), title=f"Answer metrics by question type: {name}")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        out = folder / f"answers_{name}.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(out)
    return written
