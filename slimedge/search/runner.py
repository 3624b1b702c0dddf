"""``slimedge search run``: set up the study (settings, size model), run its workers on the chosen
executor, and write the front.

The size model is fitted once per study, before any training: the space's variants at its smallest,
middle and largest hidden size (and fewest and most layers), in every quantisation mode of the
space, with initial weights, exported and measured on the target like a trained trial (in parallel
on the same executor). Its fit and points are a study attribute, so a resumed search or a worker on
another machine uses the same one.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable, Mapping

from ..errors import UsageError
from . import executor, report
from .budget import Budget, SizeModel
from .space import FRONTEND, SearchSpace
from .study import GRACE_S, SIZE_MODEL_KEY, open_study, storage_url, summary, work


def calibration_candidates(space: SearchSpace) -> list[dict]:
    """The grid the size model is fitted on: every variant x the smallest, middle and largest
    hidden size x the fewest and most layers x every quantisation mode x every front-end
    setting; other dimensions at their first value."""
    def ends(name, default, middle=False):
        d = space.get(name)
        if d is None:
            return [default]
        v = sorted(int(x) for x in d.values())
        mid = v[len(v) // 2] if d.choices is not None else (v[0] + v[-1]) // 2
        return sorted({v[0], v[-1], *([mid] if middle else [])})

    variants_ = space.get("variant").values() if space.get("variant") else ["LSTM6"]
    quant = space.get("quantize").values() if space.get("quantize") else ["none"]
    frontend = [d for d in space.dimensions if d.name.startswith(FRONTEND)]
    fixed = {d.name: d.values()[0] for d in space.dimensions
             if d.name not in ("variant", "hidden_size", "num_layers", "quantize")
             and not d.name.startswith(FRONTEND)}
    out = []
    for v, n, layers, q, *fe in itertools.product(
            variants_, ends("hidden_size", 64, middle=True), ends("num_layers", 1), quant,
            *(d.values() for d in frontend)):
        out.append({**fixed, "variant": v, "hidden_size": n, "num_layers": layers, "quantize": q,
                    **{d.name: x for d, x in zip(frontend, fe)}})
    return out


def _calibrate(candidate, base, budget_dict, workdir):
    from .trial import calibration_point, candidate_splits

    splits = candidate_splits(candidate, base)
    return calibration_point(candidate, base, Budget.from_dict(budget_dict), splits, Path(workdir))


def settings_of(space: SearchSpace, budget: Budget, base: Mapping, n_trials: int, *,
                prune: bool = True, startup_trials: int = 10,
                grace_s: float = GRACE_S) -> dict:
    """A study's settings; ``grace_s``: how long a trial's heartbeat may be silent before its
    worker is taken for dead and the trial queued again."""
    if not grace_s >= 2:
        raise UsageError(f"the heartbeat grace must be at least 2 s, got {grace_s}")
    return {"space": space.to_dict(), "budget": budget.to_dict(), "base": dict(base),
            "n_trials": int(n_trials), "prune": bool(prune), "startup_trials": int(startup_trials),
            "grace_s": float(grace_s)}


def run(out: str | Path, settings: Mapping | None, *, study_name: str = "search",
        storage: str | None = None, backend: str = "local", workers: int = 2,
        address: str | None = None, log: Callable[[str], None] = lambda s: None) -> dict:
    """Create or resume the study, fit the size model if it has none, run ``workers`` workers,
    write the reports into ``out``; returns :func:`~slimedge.search.study.summary`."""
    executor.check_backend(backend, address)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: the search's output is a folder; this is a file")
    out.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage, out)
    study = open_study(url, study_name, settings)
    settings = study.user_attrs["slimedge_search"]
    with executor.pool(backend, workers, address) as p:  # one set of processes for both
        if SIZE_MODEL_KEY not in study.user_attrs:
            space = SearchSpace.from_dict(settings["space"])
            cands = calibration_candidates(space)
            log(f"size model: measuring {len(cands)} exports with initial weights")
            points = p.map(_calibrate, [(c, settings["base"], settings["budget"],
                                         str(out / "size-model" / f"{k}"))
                                        for k, c in enumerate(cands)])
            study.set_user_attr(SIZE_MODEL_KEY, SizeModel.fit(points).to_dict())
        log(f"running {workers} worker(s) on {backend}")
        p.map(work, [(url, study_name, str(out), k) for k in range(workers)])
    s = summary(study)
    report.write(s, study, out)
    return s


__all__ = ["run", "settings_of", "calibration_candidates"]
