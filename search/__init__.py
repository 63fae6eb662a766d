"""NAS on NB201 under a latency limit: BRP-NAS, aging evolution, REINFORCE, random search, oracle NAS.

Modules:

* :mod:`search.space` — the NB201 space as shared arrays (ops, validity, encodings), one-edge mutation.
* :mod:`search.latency` — the :class:`~search.latency.LatencySource` interface and its measured
  (LatBench table, SQL store), in-process predictor and REST implementations.
* :mod:`search.oracle` — "training" = reading NB201 accuracies (random-seed noise or seed 888), budget,
  cache and trace; what a search reports.
* :mod:`search.problem` — the latency filter, seeding, :class:`~search.problem.SearchResult`.
* :mod:`search.brp` (Algorithm 1), :mod:`search.evolution`, :mod:`search.reinforce`,
  :mod:`search.random_search` — the algorithms; :mod:`search.relation` — binary relation predictors.
* :mod:`search.oracle_nas` — the paper's S1.3 / Fig. S3 analysis of latency predictors.
* :mod:`search.runner` — one entry point for all algorithms; :mod:`search.cli` — ``eagle search``.

Example::

    from search.latency import TableLatency
    from search.problem import Problem
    from search.runner import SearchOptions, run_search

    gpu = TableLatency("desktop_gpu_gtx_1080ti_fp32")
    problem = Problem.build(5.0, predicted=gpu, measured=gpu)
    result = run_search(problem, SearchOptions("ae", total=150), seed=0)
    print(result.selected)
"""
