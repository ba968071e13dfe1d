"""How much a run's overall speedup moves between repeats of the same grid when AR is timed
in its own run (``separate``, Spec-Bench's way) and beside each question (``paired``).

Each repeat decodes the same questions afresh, in the same process, with the same target:
``separate`` runs AR, then the method, and divides their mean speeds; ``paired`` runs the
method with AR decoded right before or after each question. The spread is
(max - min) / mean of the repeats' overall speedups."""

from __future__ import annotations

import tempfile
from pathlib import Path

from spec_bench.commands import compose_config
from spec_bench.metrics import find_runs, load_questions_frame, summarize
from spec_bench.runner import Runner


def overall_speedup(root: Path, drafter_label: str) -> float:
    summary = summarize(load_questions_frame(find_runs(root)))
    row = summary[(summary.drafter == drafter_label) & (summary.category == "overall")]
    return float(row.speedup.iloc[0])


def repeat_grid(
    target, drafter: str, budget: str, repeats: int, overrides: list[str]
) -> dict[str, list[float]]:
    """Overall speedups of ``repeats`` repeats in each timing mode."""
    label = drafter if budget == "paper" else f"{drafter}@{budget}"
    speedups: dict[str, list[float]] = {"separate": [], "paired": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(repeats):
            for timing in ("separate", "paired"):
                out = Path(scratch) / f"{timing}-{repeat}"
                settings = [*overrides, f"out_dir={out}", f"bench.timing={timing}", "wandb.mode=disabled"]
                if timing == "separate":
                    Runner(compose_config(["drafter=ar", *settings]), target=target).run()
                cfg = compose_config([f"drafter={drafter}", f"engine.budget={budget}", *settings])
                Runner(cfg, target=target).run()
                speedups[timing].append(overall_speedup(out, label))
    return speedups


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / (sum(values) / len(values))
