"""Which model fits my device? A budgeted multi-objective search over SLIM variants, on Optuna.

    from slimedge import search
    space = search.SearchSpace.from_dict({"variant": ["LSTM0", "LSTM6"], "hidden_size": [8, 16],
                                          "quantize": ["int8"]})
    budget = search.Budget("cortex-m4", {"flash": 32768, "ram": 8192, "cycles_per_second": 4e6})
    s = search.run("out/", search.settings_of(space, budget, {"data": "fsdd", "epochs": 3}, 20))
    s["front"]  # the Pareto front: accuracy on validation data against flash, RAM, cycles/s

The modules:

    space     the declared space (variants, sizes, gate constants, quantisation, format, any
              training setting)
    budget    the target's limits and the size model that rejects candidates before training
    trial     one candidate: train, export, score on validation data, measure on the target
    study     the Optuna study: storage (SQLite, PostgreSQL), settings, worker loop, the front
    executor  local worker processes or a Ray cluster
    runner    set up a study (size model) and run its workers
    report    the front as a table, JSON, CSV and a plot

Needs the ``search`` extra (optuna) besides ``train`` and ``devices``; ``--backend ray`` and
PostgreSQL storage need the ``cluster`` extra.
"""
from __future__ import annotations

from .budget import Budget, SizeModel, parse_bytes, parse_count
from .runner import run, settings_of
from .space import SearchSpace

__all__ = ["SearchSpace", "Budget", "SizeModel", "run", "settings_of", "parse_bytes",
           "parse_count"]
