"""The BRP-NAS configuration sweep that picked ``search.runner.TUNED_BRP``.

Unconstrained NB201 CIFAR-100 (the ``free`` setting of ``search_fig6.py``: the same oracle, noise model
and budget accounting), a few runs per configuration on *tuning* seeds ``500_000 + r`` — disjoint from
every seed of ``search_fig6.py`` — and only the first 150 trained models (BRP-NAS trains the same first
150 models whatever M >= 150 is). Every configuration uses the same seeds, so configurations are compared
on paired runs.

Per configuration: mean ``max_test`` (best test accuracy among the trained models) after 50, 100 and
150 trained models; the share of runs that trained one of the two best cells (test 73.51 % and 73.48 %,
the only ones above 73.3 %) within 50 and within 100 models; the step at which the best cell was
trained in each run (null: not within 150); seconds per run (machine shared, so only indicative).

Resumable: one JSON line per finished configuration in ``units/brp_sweep.jsonl``; the summary goes to
``brp_sweep.json`` / ``brp_sweep.md`` in ``benchmarks/results/search/``.

    nice -n 10 python benchmarks/search_brp_sweep.py            # run what is missing (6 runs each)
    nice -n 10 python benchmarks/search_brp_sweep.py --summary  # re-aggregate
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from search.oracle import MAX_TEST
from search.problem import Problem
from search.runner import (
    KERNEL_BRP,
    LINEAR_BRP,
    REFIT_BRP,
    TUNED_BRP,
    SearchOptions,
    make_relation_model,
    run_search,
)

RESULTS = Path(__file__).resolve().parent / "results" / "search"
SEED_BASE = 500_000
TOTAL = 150
BEST = (9930, 3888)  # the two NB201 cells with CIFAR-100 test accuracy above 73.3 % (73.51, 73.48)
HARD = {"target": "hard", "temperature": None}
SOFT = {"target": "soft", "temperature": 1.0}
REFIT = {"refit_every": 5, "refit_until": 100}
# In the order they were run: the paper's configuration (4 runs), round 1 (hard targets: the schedule,
# width), round 2 (soft targets: schedule, temperature), round 3 (refitting the predictor every 5 models
# of the final phase until 100 are trained; 8 runs each).
CONFIGS: list[dict[str, Any]] = [
    {"budget": 100, "iterations": 5, "alpha": 0.5, **HARD},
    {"budget": 30, "iterations": 3, "alpha": 0.5, **HARD},
    {"budget": 40, "iterations": 4, "alpha": 0.5, **HARD},
    {"budget": 50, "iterations": 5, "alpha": 0.5, **HARD},
    {"budget": 40, "iterations": 4, "alpha": 1.0, **HARD},
    {"budget": 40, "iterations": 4, "alpha": 0.5, **SOFT},
    {"budget": 40, "iterations": 4, "alpha": 0.5, "hidden": 128, **HARD},
    {"budget": 40, "iterations": 4, "alpha": 1.0, **SOFT},
    {"budget": 30, "iterations": 3, "alpha": 0.5, **SOFT},
    {"budget": 40, "iterations": 4, "alpha": 0.5, "target": "soft", "temperature": 0.5},
    {"budget": 40, "iterations": 4, "alpha": 0.5, "target": "soft", "temperature": 2.0},
    {"budget": 40, "iterations": 4, "alpha": 0.5, **SOFT, **REFIT},
    {"budget": 20, "iterations": 2, "alpha": 0.5, **SOFT, **REFIT},
    {"budget": 20, "iterations": 2, "alpha": 0.5, **SOFT, "refit_every": 3, "refit_until": 100},
]
# Round 4: the kernel relation predictor (search.relation.KernelRelationModel; ~10 ms per fit), refitted
# after every trained model of the final phase; 40 runs each (ROUND4_RUNS) on seeds 500000-500039.
KERNEL = {"relation": "kernel", **SOFT, "refit_every": 1}
ROUND4: list[dict[str, Any]] = [
    {"budget": 20, "iterations": 2, "alpha": 0.5, **KERNEL, "length_scale": ls, "l2": l2}
    for ls, l2 in ((1.0, 0.01), (2.0, 0.03), (4.0, 0.03), (8.0, 0.03), (16.0, 0.01), (32.0, 0.01))
] + [
    {"budget": 10, "iterations": 1, "alpha": 0.5, **KERNEL, "length_scale": ls, "l2": l2}
    for ls, l2 in ((8.0, 0.03), (16.0, 0.01))
]
# Round 5: the linear relation predictor ranked by an upper confidence bound (search.relation.
# LinearRelationModel; a few ms per fit), refitted after every trained model; 40 runs each on the same seeds.
LINEAR = {"relation": "linear", **SOFT, "refit_every": 1}
ROUND5: list[dict[str, Any]] = [
    {"budget": 10, "iterations": 1, "alpha": 0.5, **LINEAR, "l2": l2, "optimism": beta}
    for l2, beta in ((0.01, 0.0), (0.1, 0.0), (0.1, 0.2), (0.1, 0.4), (0.1, 0.8))
]
ROUND4_RUNS = 40  # runs per row of rounds 4 and 5


def key_of(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def units_path(out: Path) -> Path:
    return out / "units" / "brp_sweep.jsonl"


def read_rows(out: Path) -> dict[str, dict[str, Any]]:
    path = units_path(out)
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {key_of(row["cfg"]): row for row in rows}


def run_config(config: dict[str, Any], runs: int) -> dict[str, Any]:
    options = SearchOptions("brp", TOTAL, **config)
    model = make_relation_model(options)
    problem = Problem.build()
    per_run = []
    for r in range(runs):
        start = time.perf_counter()
        result = run_search(problem, options, SEED_BASE + r, relation_model=model)
        seconds = time.perf_counter() - start
        curve = result.curves()[MAX_TEST]
        step = {i: next((e.step for e in result.trace if e.index == i), None) for i in BEST}
        per_run.append({"s": seconds, "curve": curve, "step": step})

    def mean_at(t: int) -> float:
        return round(float(np.mean([run["curve"][t - 1] for run in per_run])), 3)

    def share(t: int) -> float:
        return float(np.mean([any(s is not None and s <= t for s in run["step"].values()) for run in per_run]))

    return {
        "cfg": config,
        "runs": runs,
        "s": round(float(np.mean([run["s"] for run in per_run])), 2),
        "m50": mean_at(50),
        "m100": mean_at(100),
        "m150": mean_at(150),
        "top2@50": share(50),
        "top2@100": share(100),
        "t9930": [run["step"][BEST[0]] for run in per_run],
        "load": [round(x, 2) for x in os.getloadavg()],
    }


def render_md(rows: list[dict[str, Any]], chosen: str, chosen_refit: str, chosen_kernel: str) -> str:
    lines = [
        "# BRP-NAS configuration sweep (unconstrained NB201 CIFAR-100, tuning seeds)",
        "",
        "Reproduce: `nice -n 10 python benchmarks/search_brp_sweep.py` (resumable). Seeds 500000+r, "
        "disjoint from the benchmark's; the same seeds for every configuration (paired). `m@t`: mean "
        "max_test after t trained models; `top2@t`: share of runs that trained one of the two cells "
        "above 73.3 % test (73.51, 73.48) within t models; `step of best`: when the 73.51 % cell was "
        "trained in each run (None: not within 150). Unlisted options: SearchOptions defaults "
        "(4x64 GCN, 500 steps). s/run on 2 shared cores under a load average of 4-26: indicative only.",
        "",
        "Choice rule, applied before the 50-run benchmark: the best share of runs reaching the two top "
        "cells within 50 models (the 3x target), then m@50. With 6 runs the standard error of m@50 is "
        "about 0.2 points, so close rows are not told apart; what stands out is soft targets with "
        "temperature 1 against hard ones at the same schedule (top2@50 0.67 vs 0.33, the best cell "
        "trained within 50 models in 3 of 6 runs vs 0 of 6).",
        "",
        "Round 3 (rows with `refit_every`; not the paper's Algorithm 1, 8 runs each on seeds "
        "500000-500007): the relation predictor is also retrained after every `refit_every` models of the "
        "final phase until `refit_until` models are trained, so those accuracies steer the ranking. Rule, "
        "fixed after the first two round-3 rows were in: the best m@50 (the 3x criterion reads the mean "
        "max_test curve at 50 models), among rows with m@100 >= 73.3. Picked: K=20, I=2, soft T=1, refit "
        "every 3 (`search.runner.REFIT_BRP`, arm `brp_refit`). With 8 runs the standard error of m@50 is "
        "about 0.15 points, so the three round-3 rows are not told apart at 50 models; refitting every 3 "
        "models also costs about 2.5x the time per run of refitting every 5. Not run for lack of time: "
        "hard targets with refits (K=40 and K=20), K=10 with I=1.",
        "",
        "Round 4 (rows with `relation=kernel`; not the paper's predictor, 40 runs each on seeds "
        "500000-500039): Algorithm 1 with the kernel binary relation predictor on structural descriptors of "
        "the cell (`search.relation.KernelRelationModel`), refitted after every model of the final phase (a "
        "fit takes ~10 ms). The grid (length scale, l2, K/I) was narrowed by a 10-20-run prototype on the "
        "first of these seeds. Rule: the best m@50 among round-4 rows with m@100 >= 73.3; picked: "
        "`search.runner.KERNEL_BRP` (arms `brp_kernel` / `brp_gcn_kernel` of `search_fig6.py`, run "
        "afterwards on their own fresh seeds).",
        "",
        "Round 5 (rows with `relation=linear`; not the paper's predictor, 40 runs each on seeds "
        "500000-500039): the same pair loss, linear in the same descriptors (`search.relation."
        "LinearRelationModel`), candidates ranked by the fitted score plus `optimism` times its standard "
        "deviation under the fit's curvature (an upper confidence bound), refitted after every trained "
        "model. Why: the slow kernel runs kept refining all-conv cells because the first random models "
        "ranked the input->output skip low; an optimistic ranking tries such untested combinations. The "
        "configuration was picked before these rows, on a prototype over other tuning seeds (510000-510059, "
        "60 runs, CIFAR-100: m@50 73.513 for l2 0.1 with optimism 0.2 and 0.4 vs 73.130 for the kernel pick) "
        "and checked on ImageNet16-120 (same seeds; m@50 47.152 vs the kernel pick's 46.589, optimum "
        "47.311): `search.runner.LINEAR_BRP` (l2 0.1, optimism 0.4; arms `brp_linear` / `brp_gcn_linear`, "
        "run afterwards on their own fresh seeds). These rows show the grid on this sweep's seeds.",
        "",
        "| config | runs | s/run | m@50 | m@100 | m@150 | top2@50 | top2@100 | step of best |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = ", ".join(f"{k}={v}" for k, v in row["cfg"].items())
        key = key_of(row["cfg"])
        marks = {
            chosen: " **(chosen)**",
            chosen_refit: " **(chosen, refit)**",
            chosen_kernel: " **(chosen, kernel)**",
            key_of(LINEAR_BRP): " **(chosen, linear)**",
        }
        mark = marks.get(key, "")
        lines.append(
            f"| {name}{mark} | {row['runs']} | {row['s']} | {row['m50']} | {row['m100']} | {row['m150']} | "
            f"{row['top2@50']:.2f} | {row['top2@100']:.2f} | {row['t9930']} |"
        )
    lines.append("")
    return "\n".join(lines)


def benchmark_check(out: Path) -> list[str]:
    """How the picked configuration did afterwards on the benchmark's own seeds (search_fig6.json)."""
    path = out / "search_fig6.json"
    if not path.exists():
        return []
    settings = json.loads(path.read_text())["settings"]
    lines = [
        "Afterwards, 50 runs each on the benchmark's seeds (`search_fig6.md`; mean max_test):",
        "",
        "| setting | arm | @50 | @100 | @150 |",
        "|---|---|---|---|---|",
    ]
    for setting, arms in (
        ("free", ("brp", "brp_tuned", "brp_refit", "brp_kernel", "brp_linear")),
        ("gpu5ms", ("brp_gcn", "brp_gcn_tuned", "brp_gcn_kernel", "brp_gcn_linear")),
    ):
        for arm in arms:
            a = settings.get(setting, {}).get("arms", {}).get(arm)
            if a:
                m = a[MAX_TEST]
                lines.append(f"| {setting} | {arm} | {m['mean_at_50']} | {m['mean_at_100']} | {m['mean_at_150']} |")
    lines += [
        "",
        "The pick (`*_tuned`) was ahead of the paper's configuration only at 50 trained models; from 100 on "
        "it was behind in the unconstrained setting. The 6-run sweep rows over-stated it (selection among "
        "11 noisy rows), so the paper's configuration stays the default. `brp_refit` (round 3's pick) "
        "ran afterwards on its own fresh seeds; its factor against AE is in `search_fig6.md`. Round 4's pick "
        "(`brp_kernel`) also read lower on its fresh seeds than on the tuning seeds (m@50 73.357 over 40 tuning "
        "runs), again the selection among noisy rows. Round 5's pick (`brp_linear`) did not: on its fresh "
        "seeds every run trained the best cell within 50 models, as on the tuning seeds.",
        "",
    ]
    return lines


def chosen_config() -> str:
    """The configuration the sweep picked (``search.runner.TUNED_BRP``)."""
    return key_of(TUNED_BRP)


def chosen_kernel() -> str:
    """The kernel-predictor configuration round 4 picked (``search.runner.KERNEL_BRP``, arm ``brp_kernel``)."""
    return key_of(KERNEL_BRP)


def chosen_refit() -> str:
    """The refitting configuration round 3 picked (``search.runner.REFIT_BRP``, arm ``brp_refit``)."""
    return key_of(REFIT_BRP)


def write_summary(out: Path) -> None:
    by_key = read_rows(out)
    rows = [by_key[key_of(c)] for c in CONFIGS + ROUND4 + ROUND5 if key_of(c) in by_key]
    chosen = chosen_config()
    (out / "brp_sweep.json").write_text(
        json.dumps(
            {
                "seed_base": SEED_BASE,
                "chosen": json.loads(chosen),
                "chosen_refit": REFIT_BRP,
                "chosen_kernel": KERNEL_BRP,
                "chosen_linear": LINEAR_BRP,
                "rows": rows,
            },
            indent=1,
        )
    )
    text = render_md(rows, chosen, chosen_refit(), chosen_kernel()) + "\n".join(benchmark_check(out))
    (out / "brp_sweep.md").write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="runs per configuration (default 6)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--summary", action="store_true", help="only aggregate existing rows")
    args = parser.parse_args(argv)
    if not args.summary:
        units_path(args.out).parent.mkdir(parents=True, exist_ok=True)
        for config in CONFIGS + ROUND4 + ROUND5:
            if key_of(config) in read_rows(args.out):
                continue
            row = run_config(config, ROUND4_RUNS if config in ROUND4 + ROUND5 else args.runs)
            with units_path(args.out).open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    write_summary(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
