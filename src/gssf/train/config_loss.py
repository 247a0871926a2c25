"""Keys of the older loss form (``loss.name``, ``loss.weights``, per-loss keys) applied over ``loss.terms``.

:mod:`gssf.train.config_io` calls :func:`legacy_loss_layer` for every layer it applies (an
inheriting preset, ``--set`` overrides); :func:`gssf.train.config_schema.legacy_loss_terms`
turns a config written wholly in the older form into terms.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Sequence

from gssf.train.config_schema import LEGACY_LOSS_ARGS, LEGACY_LOSS_KEYS, LossConfig, legacy_loss_kwargs

__all__ = ["legacy_loss_layer"]


def legacy_loss_layer(
    lo: LossConfig, base_terms: Sequence[Mapping[str, Any]], changed: Sequence[str], weights_replaced: bool
) -> None:
    """Keys of the older loss form set on top of a config whose losses are ``loss.terms``: edit the terms.

    A layer (``--set`` overrides, or a preset that inherits another) that sets ``loss.name``,
    ``loss.weights`` or a per-loss key, but not ``loss.terms``, over a config with terms would
    otherwise do nothing (terms replace those keys); instead it changes the terms as it changed the
    older form: ``name`` keeps the terms of the names it lists (in its order) and adds the others
    from the per-loss keys, ``weights`` sets the weights of the named terms (a whole new mapping
    resets the others to 1), a per-loss key sets that argument of every term whose loss it is for.
    A key that would still do nothing (``loss.margin`` with only infonce) or a weight for a loss
    that is not there is an error. Within one layer, ``loss.terms`` given with the older keys wins
    over them, as before (:func:`gssf.train.config_validation.validate_config` refuses ``weights``).
    """
    keys = list(dict.fromkeys(changed))
    if not base_terms or "terms" in keys or not set(keys) & ({"name", "weights"} | set(LEGACY_LOSS_KEYS)):
        return
    terms = [dict(t, kwargs=dict(t.get("kwargs") or {})) for t in copy.deepcopy(list(base_terms))]
    if "name" in keys:
        first: Dict[str, Dict[str, Any]] = {}
        for t in terms:
            first.setdefault(str(t.get("name")), t)
        new_names = dict.fromkeys(lo.name.split("+"))
        terms = [first.get(n) or {"name": n, "kwargs": legacy_loss_kwargs(n, lo)} for n in new_names]
    names = [str(t.get("name")) for t in terms]
    if "weights" in keys:
        unknown = [k for k in lo.weights if k not in names]
        if unknown:
            raise ValueError(
                f"unknown key 'loss.weights.{unknown[0]}'; valid keys: {', '.join(names)} (the losses of loss.terms)"
            )
        for t in terms:
            if t["name"] in lo.weights:
                t["weight"] = float(lo.weights[t["name"]])
            elif weights_replaced:
                t.pop("weight", None)
        lo.weights = {}
    for key in (k for k in keys if k in LEGACY_LOSS_KEYS):
        users = [t for t in terms if t["name"] in LEGACY_LOSS_KEYS[key]]
        if not users:
            raise ValueError(
                f"config key 'loss.{key}' is for {' and '.join(LEGACY_LOSS_KEYS[key])}, but the config's loss.terms "
                f"({', '.join(names)}) has no {' or '.join(LEGACY_LOSS_KEYS[key])} term: it would do nothing; give the "
                "losses' arguments in loss.terms"
            )
        for t in users:
            kw = t["kwargs"]
            if t["name"] == "triplet":  # margin and soft_margin both give its margin (None: soft)
                current = kw.get("margin", LossConfig.margin)
                soft = lo.soft_margin if "soft_margin" in keys else current is None
                kw["margin"] = None if soft else (lo.margin if "margin" in keys or current is None else current)
            else:
                arg = LEGACY_LOSS_ARGS[t["name"]][key]
                kw[arg] = legacy_loss_kwargs(t["name"], lo)[arg]
    lo.terms = terms
