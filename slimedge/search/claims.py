"""Which trial trains a model: one claim per (study, model) in the study's own database.

Two workers may ask the sampler at the same moment and get the same candidate (the brute-force
sampler picks among the parameters no trial holds *yet*, and a trial's parameters reach the
storage only as it suggests them). Looking at the other trials' parameters cannot settle who
runs it: the earlier trial may store its parameters after the later one has looked. So a trial
claims its model (:func:`~.space.effective` parameters) by inserting a row under a primary key,
which the database grants to exactly one insert, on SQLite as on PostgreSQL; the others are
duplicates of the holder. A holder that FAILED (its worker died) hands the claim on to the retry
of its parameters, by a compare-and-set of the holder's number.
"""
from __future__ import annotations

import functools
import json
from typing import Mapping

from .space import effective

TABLE = "slimedge_claims"


@functools.cache
def _table(url: str):
    """The claims table of the database at ``url`` (created when missing) and its engine."""
    import sqlalchemy as sa

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    engine = sa.create_engine(url, **kwargs)
    meta = sa.MetaData()
    table = sa.Table(TABLE, meta,
                     sa.Column("study", sa.String(512), primary_key=True),
                     sa.Column("model", sa.String(2048), primary_key=True),
                     sa.Column("trial", sa.Integer, nullable=False))
    try:
        meta.create_all(engine, checkfirst=True)
    except sa.exc.DBAPIError:  # another worker created it between the check and the create
        if not sa.inspect(engine).has_table(TABLE):
            raise
    return engine, table


def model_key(candidate: Mapping) -> str:
    """A candidate's model as the claim's key: its effective parameters, sorted."""
    return json.dumps(effective(candidate), sort_keys=True, default=str)


def claim(url: str, study, number: int, candidate: Mapping) -> int | None:
    """Claim ``candidate``'s model in ``study`` (at ``url``) for trial ``number``: None when it
    is this trial's to train, else the number of the trial that holds it."""
    import optuna
    import sqlalchemy as sa

    engine, table = _table(url)
    key = {"study": study.study_name, "model": model_key(candidate)}
    try:
        with engine.begin() as conn:
            conn.execute(table.insert().values(**key, trial=number))
        return None
    except sa.exc.IntegrityError:
        pass
    where = sa.and_(table.c.study == key["study"], table.c.model == key["model"])
    with engine.begin() as conn:
        holder = conn.execute(sa.select(table.c.trial).where(where)).scalar_one()
    if holder == number:
        return None
    trials = study.get_trials(deepcopy=False)
    if holder < len(trials) and trials[holder].state == optuna.trial.TrialState.FAIL:
        with engine.begin() as conn:  # the failed holder's claim passes to one retry
            moved = conn.execute(table.update().where(sa.and_(where, table.c.trial == holder))
                                 .values(trial=number)).rowcount
        if moved == 1:
            return None
        with engine.begin() as conn:
            holder = conn.execute(sa.select(table.c.trial).where(where)).scalar_one()
    return holder
