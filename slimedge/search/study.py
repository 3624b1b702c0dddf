"""The search as an Optuna study: its storage, its settings, the worker loop, the Pareto front.

Everything a worker needs lives in the study's storage (:func:`open_study`): the settings
(space, budget, training base, objectives) and the fitted size model are study attributes, so any
process that reaches the storage (a SQLite file on one machine, a PostgreSQL server across
machines) can join with :func:`work`. Trials run through ``study.optimize`` one at a time, so
Optuna's heartbeat covers each: a worker killed mid-trial leaves a trial whose heartbeat stops; the
next worker to start a trial marks it failed and :class:`optuna.storages.RetryFailedTrialCallback`
enqueues its parameters once more (the retry records ``failed_trial``). Nothing is lost, and no
finished trial runs again.

A trial ends in one of these ways (``state`` / user attribute): COMPLETE with values (accuracy on
the validation split, then the budget's metrics) and ``violation`` (feasible when all <= 0);
PRUNED with ``rejected`` (the size model says it cannot fit; never trained), ``pruned_at_epoch``
(the pruner stopped its training), ``duplicate_of`` (another trial holds the claim to the same
model: :mod:`.claims`) or ``error`` (the candidate diverged or its export failed validation). The budget of
``n_trials`` counts trials that trained: COMPLETE, and PRUNED with ``pruned_at_epoch`` or
``error``.
"""
from __future__ import annotations

import functools
import json
import math
import os
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import Mapping

from ..errors import ExportValidationError, QuantizationError, TrainingDiverged, UsageError
from . import claims
from .budget import Budget, SizeModel
from .space import SearchSpace, candidate_label

SETTINGS_KEY = "slimedge_search"
SIZE_MODEL_KEY = "size_model"
HEARTBEAT_S = 1       # a running trial's heartbeat
SCHEMA_TRIES = 5      # opening a fresh database that other workers are creating at the same time
WAIT_S = 0.2          # a worker with no trial to start (the last ones run elsewhere) looks again
GRACE_S = 60          # stale after this long without one (default; a study's own: settings)
CAP_FACTOR = 20       # trials asked at most: CAP_FACTOR x n_trials (duplicates and rejections)
CANDIDATE_ERRORS = (TrainingDiverged, ExportValidationError, QuantizationError)


def storage_url(storage: str | None, out: Path, *, existing: bool = False) -> str:
    """``None``: SQLite in ``out`` (with ``existing``, it must be there: a command that reads a
    search never creates one); a URL as given (sqlite:///..., postgresql://...)."""
    if storage is None:
        db = Path(out) / "study.db"
        if existing and not db.is_file():
            raise UsageError(f"{out}: no search here (no study.db); start one with "
                             f"`slimedge search run {out} ...`, or name its --storage")
        return f"sqlite:///{db.resolve()}"
    if "://" not in storage:
        raise UsageError(f"--storage takes a database URL (sqlite:///path.db, "
                         f"postgresql://user@host:port/db), got {storage!r}")
    return storage


def _storage(url: str, grace_s: float | None = None):
    """Optuna's RDB storage of ``url``; with ``grace_s``, a trial whose worker has not beaten for
    that long is failed and its parameters queued once more (RetryHeartbeatStaleTrialCallback).
    The grace must outlast a heartbeat delayed by a loaded machine or a busy database: a live
    trial taken for dead is run twice."""
    import optuna
    import sqlalchemy.exc

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            extra = {} if grace_s is None else {
                "heartbeat_interval": HEARTBEAT_S, "grace_period": int(grace_s),
                "heartbeat_stale_trial_callback":
                    optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
            # a fresh database: workers started together each create Optuna's tables (and stamp
            # its schema version), and all but the first are refused a name or row that now
            # exists; by the next try it is complete. SQLite too: seen as a UNIQUE failure on
            # alembic_version when a killed worker's replacement started beside the others
            for attempt in range(SCHEMA_TRIES):
                try:
                    if url.startswith("sqlite:///"):
                        storage = _serialized_sqlite_storage()(url, engine_kwargs=kwargs,
                                                               **extra)
                        storage.state_lock = url[len("sqlite:///"):] + ".state-lock"
                        return storage
                    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, **extra)
                except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                    if attempt == SCHEMA_TRIES - 1:
                        raise
                    time.sleep(0.5 * (attempt + 1))
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ArgumentError,
            ModuleNotFoundError) as e:  # unreachable, refused, a bad URL, no driver
        reason = getattr(e, "orig", None) or e
        raise UsageError(f"cannot open the study storage {_safe(url)}: "
                         f"{str(reason).splitlines()[0]}") from None


@functools.cache
def _serialized_sqlite_storage():
    """Optuna's RDB storage whose trial state changes, on one SQLite file, run one at a time
    across processes (a file lock beside the database). Optuna reads a trial ``FOR UPDATE``
    before changing its state, and a change is refused when another process made it first (a
    queued trial taken to run, a stale one failed); SQLite ignores ``FOR UPDATE`` and its driver
    starts no transaction before the write, so two workers could both take the same queued retry
    and run it twice (seen: two trainings of one trial), or both fail a stale trial and queue two
    retries. PostgreSQL honours ``FOR UPDATE`` itself."""
    import filelock
    import optuna

    class SerializedSQLiteStorage(optuna.storages.RDBStorage):
        state_lock: str

        def set_trial_state_values(self, trial_id, state, values=None):
            with filelock.FileLock(self.state_lock):
                return super().set_trial_state_values(trial_id, state, values)

    return SerializedSQLiteStorage


def objectives(budget: Budget) -> list[str]:
    return ["val_accuracy", *budget.metrics]


def _set_violation(trial, budget: Budget, violations: list[float]) -> None:
    """The budget's limits as Optuna constraints (feasible when all <= 0: best_trials keeps
    only those) and as the ``violation`` attribute."""
    trial.set_user_attr("violation", list(violations))
    for key, v in zip(sorted(budget.limits) or ["none"], violations or [0.0]):
        trial.set_constraint(key, v)


def open_study(url: str, name: str, settings: Mapping | None = None, *, seed: int = 0):
    """The study ``name`` at ``url``: created with ``settings`` when new; when it exists, its
    own settings are used and ``settings`` (if given) must equal them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(url)  # without a heartbeat until the study's grace is known
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        existing = None
    if existing is None:
        if settings is None:
            raise UsageError(f"no study {name!r} in {_safe(url)}: start one with "
                             f"`slimedge search run` first")
        budget = Budget.from_dict(settings["budget"])
        dirs = ["maximize"] + ["minimize"] * len(budget.metrics)
        study = optuna.create_study(study_name=name, storage=storage, directions=dirs,
                                    load_if_exists=True)
        study.set_user_attr(SETTINGS_KEY, json.loads(json.dumps(settings)))
        existing = study
    stored = existing.user_attrs.get(SETTINGS_KEY)
    if stored is None:
        raise UsageError(f"study {name!r} in {_safe(url)} is not a slimedge search")
    if settings is not None and json.loads(json.dumps(settings)) != stored:
        diff = sorted(k for k in set(stored) | set(settings)
                      if json.dumps(stored.get(k), sort_keys=True)
                      != json.dumps(json.loads(json.dumps(settings)).get(k), sort_keys=True))
        raise UsageError(f"study {name!r} in {_safe(url)} was started with other settings "
                         f"({', '.join(diff)} differ): resume it with the same options, or "
                         f"name a new --study")
    # a finite space no larger than the budget: every candidate once (brute force); else TPE
    if _space_size(SearchSpace.from_dict(stored["space"])) <= int(stored["n_trials"]):
        with warnings.catch_warnings():  # "experimental" since Optuna 3.1
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.BruteForceSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=int(stored.get("startup_trials", 10)))
    return optuna.load_study(study_name=name, sampler=sampler,
                             storage=_storage(url, float(stored.get("grace_s", GRACE_S))))


def _safe(url: str) -> str:
    """The URL without a password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def trained(trial) -> bool:
    import optuna

    s, a = trial.state, trial.user_attrs
    return s == optuna.trial.TrialState.COMPLETE or (
        s == optuna.trial.TrialState.PRUNED and ("pruned_at_epoch" in a or "error" in a))


def progress(study) -> dict:
    """Counts by outcome (see the module's docstring)."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    out = {"trained": sum(map(trained, trials)), "asked": len(trials)}
    for key in ("rejected", "duplicate_of", "pruned_at_epoch", "error"):
        out[key] = sum(key in t.user_attrs for t in trials)
    out["failed"] = sum(t.state == optuna.trial.TrialState.FAIL for t in trials)
    out["complete"] = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    out["running"] = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    return out


def _space_size(space: SearchSpace) -> float:
    return math.prod(len(d.choices) if d.choices is not None else math.inf
                     for d in space.dimensions)


def work(url: str, name: str, out: str, worker: int = 0) -> dict:
    """One worker: run trials of the study until ``n_trials`` have trained (counted over every
    worker; while the last ones run elsewhere it waits, and takes over one whose worker died:
    a trial queued again is run first), the space is exhausted, or CAP_FACTOR x n_trials were
    asked. Returns its counts."""
    import optuna

    from .trial import candidate_splits

    study = open_study(url, name, seed=_seed(url, name, worker))
    settings = study.user_attrs[SETTINGS_KEY]
    space = SearchSpace.from_dict(settings["space"])
    budget = Budget.from_dict(settings["budget"])
    base = settings["base"]
    size_model = SizeModel.from_dict(study.user_attrs[SIZE_MODEL_KEY])
    n_trials = int(settings["n_trials"])
    grace_s = float(settings.get("grace_s", GRACE_S))
    pruner = _pruner(url, name, settings) if settings.get("prune", True) else None
    workdir = Path(out)
    ran = 0

    def objective(trial):
        from .trial import candidate_features, run_candidate, variant_name

        # Optuna's heartbeat thread records its first beat when it gets to it; a trial with no
        # beat is never stale, so one whose worker dies before that would stay running for ever
        # (and the search wait for it): beat once now, before anything else
        trial.storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        candidate = space.suggest(trial)
        trial.set_user_attr("label", candidate_label(candidate))
        trial.set_user_attr("host", socket.gethostname())
        dup = claims.claim(url, study, trial.number, candidate)
        if dup is not None:
            trial.set_user_attr("duplicate_of", dup)
            raise optuna.TrialPruned(f"same parameters as trial {dup}")
        splits = candidate_splits(candidate, base)
        feats = candidate_features(candidate, base, splits)
        q, v = candidate.get("quantize", "none"), variant_name(candidate)
        trial.set_user_attr("features", feats)
        trial.set_user_attr("predicted", {k: p for k, (p, _) in
                                          size_model.predict(q, v, feats).items()})
        reason = size_model.rejection(budget, q, v, feats)
        if reason:
            trial.set_user_attr("rejected", reason)
            raise optuna.TrialPruned(reason)
        curve = pruner.ask() if pruner is not None else None

        def on_epoch(row: dict) -> None:
            if curve is None:
                return
            curve.report(row["val_accuracy"], row["epoch"])
            if curve.should_prune():
                trial.set_user_attr("pruned_at_epoch", row["epoch"])
                trial.set_user_attr("val_accuracy_when_pruned", row["val_accuracy"])
                raise optuna.TrialPruned(f"validation accuracy {row['val_accuracy']:.3f} at "
                                         f"epoch {row['epoch']}")
        tdir = workdir / "trials" / f"{trial.number:05d}"
        try:
            r = run_candidate(candidate, base, budget, splits, tdir, on_epoch=on_epoch)
        except optuna.TrialPruned:
            shutil.rmtree(tdir, ignore_errors=True)
            if curve is not None:
                pruner.tell(curve, state=optuna.trial.TrialState.PRUNED)
            raise
        except CANDIDATE_ERRORS as e:
            shutil.rmtree(tdir, ignore_errors=True)
            if curve is not None:
                pruner.tell(curve, state=optuna.trial.TrialState.FAIL)
            trial.set_user_attr("error", f"{type(e).__name__}: {e}")
            raise optuna.TrialPruned(str(e)) from None
        if curve is not None:
            pruner.tell(curve, r["torch_val_accuracy"])
        for key in ("measured", "checkpoint", "export", "val_loss", "train_seconds",
                    "best_epoch", "torch_val_accuracy", "instructions_per_step",
                    "instructions_per_second", "frontend_cycles_per_second"):
            if key in r:
                trial.set_user_attr(key, r[key])
        _set_violation(trial, budget, budget.violations(r["measured"]))
        return [r["val_accuracy"], *(r["measured"][m] for m in budget.metrics)]

    total = _space_size(space)
    while True:
        # a trial whose worker died (no heartbeat for GRACE_S) fails now and is queued again
        with warnings.catch_warnings():  # "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            _adopt_silent_trials(study, grace_s)
            optuna.storages.fail_stale_trials(study)
        done = progress(study)
        finished = done["trained"] + done["rejected"]
        if done["trained"] >= n_trials or finished >= total \
                or done["asked"] >= CAP_FACTOR * n_trials:
            break
        if done["trained"] + done["running"] >= n_trials or finished + done["running"] >= total:
            # the rest is running elsewhere (or every candidate of a finite space is taken:
            # asking again would only give repeats): wait, to take over a trial whose worker
            # dies (or to see the last one end: the search's wall time waits for this worker)
            time.sleep(WAIT_S)
            continue
        try:
            study.optimize(objective, n_trials=1, catch=())
        except optuna.exceptions.UpdateFinishedTrialError:
            # another worker took this trial for dead (no heartbeat for the grace) and queued
            # it again: its retry runs; raise the study's grace if this happens on a live one
            pass
        ran += 1
    return {"worker": worker, "trials_run": ran}


def _adopt_silent_trials(study, grace_s: float) -> None:
    """A running trial that has no ``worker`` after the grace (its worker died between Optuna
    creating it and the objective's first beat) is beaten once here, and marked: its heartbeat
    then goes stale like any other, and it is failed and queued again."""
    import datetime

    import optuna

    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if "worker" not in t.user_attrs and t.datetime_start is not None and \
                (now - t.datetime_start).total_seconds() > grace_s:
            study._storage.record_heartbeat(t._trial_id)
            study._storage.set_trial_user_attr(t._trial_id, "worker", "none (died at its start)")


def _seed(url: str, name: str, worker: int) -> int:
    import zlib

    return zlib.crc32(f"{name}/{worker}".encode()) & 0x7FFFFFFF


def _pruner(url: str, name: str, settings: Mapping):
    """The companion single-objective study of per-epoch validation accuracy (Optuna's pruners
    read intermediate values, which a multi-objective trial cannot report). Its median rule
    starts after 3 trials have finished and never stops a trial in the first half of its epochs
    (a small model is always behind after one epoch)."""
    import optuna

    return optuna.create_study(
        study_name=f"{name}:curves", storage=_storage(url), direction="maximize",
        load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=int(settings.get("prune_startup", 3)),
            n_warmup_steps=int(settings["base"].get("epochs", 10)) // 2))


def front(study) -> list:
    """The feasible Pareto front (Optuna's: non-dominated COMPLETE trials whose constraints
    hold), sorted by accuracy, best first."""
    return sorted(study.best_trials, key=lambda t: (-t.values[0], t.number))


def summary(study, front_trials=None) -> dict:
    settings = study.user_attrs[SETTINGS_KEY]
    budget = Budget.from_dict(settings["budget"])
    front_trials = front(study) if front_trials is None else front_trials

    def row(t) -> dict:
        return {"trial": t.number, "label": t.user_attrs.get("label"), "params": t.params,
                **dict(zip(objectives(budget), t.values)),
                "predicted": t.user_attrs.get("predicted"),
                "checkpoint": t.user_attrs.get("checkpoint"), "export": t.user_attrs.get("export"),
                "host": t.user_attrs.get("host"), "train_seconds": t.user_attrs.get("train_seconds"),
                "retry_of": t.system_attrs.get("failed_trial")}
    return {"study": study.study_name, "settings": settings, "objectives": objectives(budget),
            "progress": progress(study), "front": [row(t) for t in front_trials],
            "size_model": study.user_attrs.get(SIZE_MODEL_KEY, {}).get("fits")}


def trial_by_number(study, number: int):
    for t in study.get_trials(deepcopy=False):
        if t.number == number:
            return t
    raise UsageError(f"study {study.study_name!r} has no trial {number}")


__all__ = ["open_study", "work", "front", "summary", "progress", "storage_url", "objectives",
           "trial_by_number"]
