"""BRP-NAS options: validation, the predictor they build, one set of defaults for CLI and benchmarks, seeds."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import fields
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from search.problem import Problem
from search.relation import KernelRelationModel, LinearRelationModel, OneHotRelationModel
from search.runner import LINEAR_BRP, PAPER_BRP, REFIT_BRP, TUNED_BRP, SearchOptions, make_relation_model, run_search

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "kl"}, "pair target"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"ensemble": 0}, "ensemble"),
        ({"relation": "kernel", "length_scale": 0.0}, "length_scale"),
        ({"relation": "kernel", "l2": -1.0}, "l2"),
        ({"relation": "svm"}, "unknown relation"),
    ],
)
def test_bad_pair_target_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchOptions("brp", 100, **kwargs)  # type: ignore[arg-type]


def test_options_reach_the_predictor_and_the_result() -> None:
    options = SearchOptions("brp", 30, budget=20, iterations=2, relation="onehot", target="soft", temperature=0.7)
    model = make_relation_model(options)
    assert isinstance(model, OneHotRelationModel) and (model.target, model.temperature) == ("soft", 0.7)
    result = run_search(Problem.build(), options, seed=5)
    assert result.info["relation"]["target"] == "soft" and result.info["relation"]["temperature"] == 0.7
    assert result.info["K"] == 20 and len(result.trace) == 30
    hard = run_search(
        Problem.build(), SearchOptions("brp", 30, budget=20, iterations=2, relation="onehot", target="hard"), 5
    )
    # the same seed, other pair targets: the first 10 (random) models agree, the ranked ones need not
    assert [e.index for e in hard.trace[:10]] == [e.index for e in result.trace[:10]]
    assert hard.info["relation"]["target"] == "hard"


def test_cli_defaults_are_the_search_options_defaults() -> None:
    from search.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["search", "--algo", "brp", "--total", "100"])
    defaults = {f.name: f.default for f in fields(SearchOptions)}
    names = (
        "budget",
        "iterations",
        "alpha",
        "hidden",
        "steps",
        "ensemble",
        "target",
        "temperature",
        "length_scale",
        "l2",
    )
    for name in names:
        assert getattr(args, name) == defaults[name], name


def test_benchmark_seeds_are_never_shared_and_arms_use_the_shared_defaults() -> None:
    fig6, sweep = load("search_fig6"), load("search_brp_sweep")
    seeds = [fig6.run_seed(setting, arm, r) for setting, arms in fig6.ARMS.items() for arm in arms for r in range(1000)]
    assert len(seeds) == len(set(seeds))
    tuning = set(range(sweep.SEED_BASE, sweep.SEED_BASE + 1000))
    assert not tuning & set(seeds)
    sizes = argparse.Namespace(hidden=None, steps=None)
    assert fig6.arm_options("brp", 300, {}, sizes) == SearchOptions("brp", 300)
    assert SearchOptions("brp", 300, **PAPER_BRP) == SearchOptions("brp", 300)  # the defaults are the paper's
    tuned = fig6.arm_options("brp", 300, TUNED_BRP, sizes)
    assert (tuned.budget, tuned.iterations, tuned.target, tuned.temperature) == (40, 4, "soft", 1.0)
    assert fig6.arm_options("brp", 300, {}, argparse.Namespace(hidden=8, steps=3)).hidden == 8
    # the tuned configuration and the paper's are rows of the sweep
    keys = {sweep.key_of(c) for c in sweep.CONFIGS}
    assert sweep.chosen_config() in keys and sweep.key_of(PAPER_BRP) in keys
    # the kernel arms run the configuration round 4 picked, with the kernel predictor
    assert sweep.chosen_kernel() in {sweep.key_of(c) for c in sweep.ROUND4}
    kernel = fig6.arm_options("brp", 300, fig6.ARMS["free"]["brp_kernel"][2], sizes)
    assert kernel.relation == "kernel" and kernel.refit_every == 1
    assert fig6.ARMS["gpu5ms"]["brp_gcn_kernel"][2] == fig6.ARMS["free"]["brp_kernel"][2]


def test_pair_target_info_in_the_cli_output(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from latbench.cli import main

    argv = ["search", "--algo", "brp", "--relation", "onehot", "--budget", "20", "--iterations", "2"]
    code = main([*argv, "--total", "25", "--seed", "1", "--target", "hard", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["info"]["relation"]["target"] == "hard"
    assert np.isfinite(out["selected"]["test_acc"])


def test_refit_options_reach_the_search(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from latbench.cli import main

    argv = ["search", "--algo", "brp", "--relation", "onehot", "--budget", "20", "--iterations", "2", "--total", "40"]
    assert main([*argv, "--seed", "1", "--refit-every", "5", "--refit-until", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["trained"] == 40 and out["info"]["refits"] == 2  # models 21-25 and 26-30
    refit = SearchOptions("brp", 300, **REFIT_BRP)
    assert refit.refit_every > 0 and SearchOptions("brp", 300).refit_every == 0  # the default never refits
    with pytest.raises(ValueError, match="refit_every"):
        SearchOptions("brp", 300, refit_every=-1)


def test_kernel_relation_refitted_after_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from latbench.cli import main

    options = SearchOptions("brp", 40, budget=10, iterations=1, relation="kernel", target="soft", temperature=1.0)
    model = make_relation_model(options)
    assert isinstance(model, KernelRelationModel) and (model.length_scale, model.l2) == (16.0, 0.01)
    with pytest.raises(ValueError, match="transfer"):
        make_relation_model(options, transfer=object())
    argv = ["search", "--algo", "brp", "--relation", "kernel", "--budget", "10", "--iterations", "1", "--total", "40"]
    argv += ["--target", "soft", "--temperature", "1", "--refit-every", "1", "--length-scale", "8", "--seed", "3"]
    assert main([*argv, "--json"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["trained"] == 40 and first["info"]["refits"] == 29  # after each of models 11..39 (none after the last)
    assert first["info"]["relation"]["kind"] == "KernelRelationModel"
    assert (first["info"]["relation"]["length_scale"], first["info"]["relation"]["l2"]) == (8.0, 0.01)
    assert main([*argv, "--json"]) == 0  # deterministic for a seed
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["selected"] == first["selected"]


def test_linear_relation_reaches_the_search(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from latbench.cli import main

    model = make_relation_model(SearchOptions("brp", 40, **LINEAR_BRP))
    assert isinstance(model, LinearRelationModel) and (model.l2, model.optimism) == (0.1, 0.4)
    default_l2 = make_relation_model(SearchOptions("brp", 40, budget=10, iterations=1, relation="linear"))
    assert isinstance(default_l2, LinearRelationModel) and default_l2.l2 == 0.1  # l2 None: the tuned one
    with pytest.raises(ValueError, match="optimism"):
        SearchOptions("brp", 40, budget=10, iterations=1, relation="linear", optimism=-0.1)
    argv = ["search", "--algo", "brp", "--relation", "linear", "--budget", "10", "--iterations", "1", "--total", "30"]
    argv += ["--target", "soft", "--temperature", "1", "--refit-every", "1", "--optimism", "0.2", "--seed", "4"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["trained"] == 30 and out["info"]["refits"] == 19
    relation = out["info"]["relation"]
    assert relation["kind"] == "LinearRelationModel" and (relation["l2"], relation["optimism"]) == (0.1, 0.2)
