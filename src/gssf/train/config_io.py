"""Reading and writing training configs: nested mappings, ``key=value`` overrides, YAML presets
(with ``inherit``) and the commented YAML of a run folder.

Values are checked against the dataclass annotations of :mod:`gssf.train.config`; every error
names the config key.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from gssf.train.config_loss import legacy_loss_layer
from gssf.train.config_schema import PRESET_DIR_ENV, SECTIONS, TrainConfig

__all__ = [
    "apply_overrides",
    "check_choice",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "find_preset",
    "list_presets",
    "load_config",
    "save_config",
]

_SECTIONS = SECTIONS

# --------------------------------------------------------------------------- parsing


def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _choices(f: dataclasses.Field) -> Optional[List[str]]:
    c = f.metadata.get("choices")
    if c is None:
        return None
    return list(c() if callable(c) else c)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"{_type_name(args[0])} or null"
    if origin in (list, List):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (dict, Dict):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; errors name the key."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    bad = ValueError(f"config key {key!r} expects {_type_name(tp)}, got {value!r}")
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise bad
        _, vt = typing.get_args(tp)
        return {str(k): (v if vt is Any else _coerce(v, vt, f"{key}.{k}")) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads ``1e-4`` (no dot) as a string; accept it as the number it means.
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    return value


def _unknown_key(key: str, valid: Sequence[str], where: str) -> ValueError:
    return ValueError(f"unknown config key {key!r}; valid keys of {where}: {', '.join(valid)}")


def check_choice(value: Any, f: dataclasses.Field, key: str) -> None:
    """``value`` is one of the field's choices (``loss.name``: each '+'-joined part); else ValueError."""
    choices = _choices(f)
    if choices is None or value is None:
        return
    parts = value.split("+") if key == "loss.name" and isinstance(value, str) else [value]
    for part in parts:
        if part not in choices:
            raise ValueError(f"invalid value {part!r} for config key {key!r}; valid choices: {', '.join(choices)}")


def _section_from_dict(cls: type, data: Mapping[str, Any], prefix: str, base: Any = None) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"config section {prefix!r} must be a mapping, got {data!r}")
    obj = base if base is not None else cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    for k, v in data.items():
        if k not in fields:
            raise _unknown_key(f"{prefix}.{k}", list(fields), repr(prefix))
        key = f"{prefix}.{k}"
        value = _coerce(v, hints[k], key)
        check_choice(value, fields[k], key)
        setattr(obj, k, value)
    return obj


def config_from_dict(data: Mapping[str, Any], base: Optional[TrainConfig] = None) -> TrainConfig:
    """Build (or update ``base`` with) a config from a nested mapping; unknown keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"a config must be a mapping of sections, got {type(data).__name__}")
    cfg = copy.deepcopy(base) if base is not None else TrainConfig()
    hints = _hints(TrainConfig)
    for section, values in data.items():
        if section not in _SECTIONS:
            raise _unknown_key(str(section), _SECTIONS, "the config")
        current = getattr(cfg, section)
        setattr(cfg, section, _section_from_dict(hints[section], values or {}, section, base=current))
        if section == "loss" and base is not None:
            legacy_loss_layer(cfg.loss, base.loss.terms, list(values or {}), weights_replaced=True)
    return cfg


def config_to_dict(cfg: TrainConfig) -> Dict[str, Any]:
    """The config as a plain nested dict (YAML/JSON-ready)."""
    return dataclasses.asdict(cfg)


def _parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(cfg: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a copy of ``cfg``.

    Mapping fields take sub-keys: ``similarity.kwargs.num_blocks=8``, ``loss.weights.id_ce=0.5``.
    """
    data = config_to_dict(cfg)
    loss_keys: List[str] = []  # loss.<key> set here, for keys of the older form over loss.terms
    weights_replaced = False
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        section = parts[0]
        if section not in _SECTIONS:
            raise _unknown_key(key, _SECTIONS, "the config")
        if len(parts) == 1:
            raise ValueError(f"override {item!r} must name a key inside section {section!r}, e.g. {section}.<key>=value")
        cls = _hints(TrainConfig)[section]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        name = parts[1]
        if name not in fields:
            raise _unknown_key(key, list(fields), repr(section))
        value = _parse_value(text)
        if section == "loss":
            loss_keys.append(name)
            weights_replaced = weights_replaced or (name == "weights" and len(parts) == 2)
        if len(parts) == 2:
            data[section][name] = value
        else:
            tp = _hints(cls)[name]
            if typing.get_origin(tp) not in (dict, Dict):
                raise ValueError(f"config key '{section}.{name}' is not a mapping: cannot set {key!r}")
            target = data[section][name]
            for p in parts[2:-1]:
                target = target.setdefault(p, {})
                if not isinstance(target, dict):
                    raise ValueError(f"cannot set {key!r}: {p!r} is not a mapping")
            target[parts[-1]] = value
    out = config_from_dict(data)
    legacy_loss_layer(out.loss, cfg.loss.terms, loss_keys, weights_replaced)
    return out


# --------------------------------------------------------------------------- presets


def _preset_dirs() -> List[Path]:
    dirs: List[Path] = []
    env = os.environ.get(PRESET_DIR_ENV)
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    # Presets ship inside the package (src/gssf/configs); the repository's configs/ links there.
    dirs.append(Path(__file__).resolve().parents[1] / "configs")
    return [d for d in dirs if d.is_dir()]


def list_presets() -> List[str]:
    """Names of the YAML presets found (``configs/<name>.yaml``)."""
    names = set()
    for d in _preset_dirs():
        names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def find_preset(name_or_path: Union[str, "os.PathLike[str]"]) -> Path:
    """The YAML file of a preset name or path; a clear error lists the presets."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        raise FileNotFoundError(f"config file not found: {p}")
    for d in _preset_dirs():
        candidate = d / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no config file or preset named {str(name_or_path)!r}; presets: {', '.join(list_presets()) or '(none found)'}"
    )


def load_config(
    source: Union[None, str, "os.PathLike[str]", Mapping[str, Any]] = None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """Defaults, then a preset name / YAML path / mapping, then ``key=value`` overrides; validated.

    A YAML file may start from another preset: ``inherit: <preset name or path>`` at its top
    level, then only the keys that differ (the ``*-frozen`` presets do this).
    """
    if source is None:
        cfg = TrainConfig()
    elif isinstance(source, Mapping):
        cfg = config_from_dict(source)
    else:
        cfg = _read_preset(find_preset(source), ())
    cfg = apply_overrides(cfg, overrides)
    return cfg.validate()


def _read_preset(path: Path, chain: Tuple[Path, ...]) -> TrainConfig:
    """The config of one YAML file, on top of the preset it names under ``inherit`` (if any)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from None
    base = None
    if isinstance(data, dict) and "inherit" in data:
        data = dict(data)
        parent = data.pop("inherit")
        if not isinstance(parent, str) or not parent:
            raise ValueError(f"{path}: 'inherit' must name a preset or a YAML file, got {parent!r}")
        parent_path = find_preset(parent)
        seen = chain + (path.resolve(),)
        if parent_path.resolve() in seen:
            raise ValueError(f"{path}: 'inherit' makes a cycle: {' -> '.join(str(p) for p in seen + (parent_path,))}")
        base = _read_preset(parent_path, seen)
    try:
        return config_from_dict(data or {}, base=base)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- YAML output


def _yaml_scalar(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()
    if text.endswith("\n...") or text.endswith("..."):
        text = text[: text.rfind("...")].strip()
    return text


def config_to_yaml(cfg: TrainConfig, header: str = "") -> str:
    """The config as YAML with each field's help as a comment (loadable by :func:`load_config`)."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    for section in _SECTIONS:
        obj = getattr(cfg, section)
        lines.append(f"{section}:  # {type(obj).__doc__.strip().splitlines()[0]}")
        for f in dataclasses.fields(obj):
            value = _yaml_scalar(getattr(obj, f.name))
            note = f.metadata.get("help", "")
            choices = _choices(f)
            if choices and f.name != "name":
                note += f" [{' | '.join(choices)}]"
            lines.append(f"  {f.name}: {value}  # {note}")
    return "\n".join(lines) + "\n"


def save_config(cfg: TrainConfig, path: Union[str, "os.PathLike[str]"], header: str = "") -> Path:
    """Write the resolved config as commented YAML, atomically."""
    from gssf.utils.io import atomic_write_text

    return atomic_write_text(path, config_to_yaml(cfg, header=header))
