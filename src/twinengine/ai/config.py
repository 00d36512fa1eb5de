"""Training configuration: load the YAML file, apply ``key=value`` overrides, check sections.

A training config is one YAML mapping with the sections ``model``, ``data``, ``loss``,
``optimizer``, ``trainer``, ``metrics`` and ``tracking``. Command-line overrides such as
``trainer.epochs=3 model.hidden=[32]`` are parsed as YAML values and set on dotted
paths. Objects are built from a ``_target_`` dotted import path plus keyword arguments
(as in Hydra or itwinai), or from a built-in short ``name``; every error names the key
that was wrong and what is accepted, as a :class:`~twinengine.core.errors.ConfigError`.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from twinengine.core.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """YAML that also reads ``1e-3`` (no dot) as a float, as people write learning rates."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


SECTIONS = ("data", "loss", "metrics", "model", "optimizer", "script", "tracking", "trainer")

TRAINER_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 32,
    "seed": 0,
    "checkpoint_every": 1,
    "patience": None,
    "log_every_n_steps": 10,
    "onnx": True,
    "strategy": "ddp",
    "guard": {"max_loss": None, "window": 3},
}
TRACKING_DEFAULTS: dict[str, Any] = {
    "experiment": "default",
    "uri": None,
    "run_name": None,
    "tensorboard": True,
    "provenance": True,
}


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The checked config in ``path`` with ``overrides`` applied and defaults filled in.

    ``_config_dir`` is added: relative ``data.path`` values are resolved against it.
    """
    path = Path(path)
    config = apply_overrides(read_config_file(path), overrides or [])
    config = check_config(config)
    config["_config_dir"] = str(path.resolve().parent)
    return config


def read_config_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``, unchecked (a clear error when it is not one)."""
    if not path.is_file():
        raise ConfigError(f"config file {path}: no such file")
    try:
        raw = _yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    return raw


def parse_override(text: str) -> tuple[str, Any]:
    """``'model.hidden=[32, 32]'`` → ``('model.hidden', [32, 32])`` (the value is YAML)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"override {text!r}: write KEY=VALUE with a dotted key, e.g. trainer.epochs=3"
        )
    try:
        parsed = _yaml(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: {value!r} is not a YAML value ({exc})") from exc
    return key, parsed


def apply_overrides(config: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``config`` with every ``key=value`` override set on its dotted path."""
    result = copy.deepcopy(dict(config))
    for text in overrides:
        key, value = parse_override(text)
        node = result
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str) and i == 0 and part in ("model", "loss", "optimizer"):
                child = node[part] = {"name": child}  # 'loss: mse' then loss.reduction=sum
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"override {key}: {where} is {child!r}, not a mapping")
            node = child
        node[parts[-1]] = value
    return result


def check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the sections and fill trainer/tracking defaults."""
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a config section; sections: {', '.join(SECTIONS)}")
    result = copy.deepcopy(dict(config))
    if "script" in result:  # a developer's own training script (twinengine.ai.script)
        result["script"] = _script_spec(result["script"])
        result.setdefault("model", {"name": "script"})
        result.setdefault("data", {})
    for section in ("model", "data"):
        if section not in result:
            raise ConfigError(
                f"{section}: missing; the config needs a {section} section "
                "(or a script section naming your own training script)"
            )
    if not isinstance(result["data"], dict):
        raise ConfigError("data: must be a mapping with path, features and target")
    result["model"] = as_spec(result["model"], "model")
    result["loss"] = as_spec(result.get("loss", "mse"), "loss")
    result["optimizer"] = as_spec(result.get("optimizer") or {"name": "adam"}, "optimizer")
    metrics = result.get("metrics") or []
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list):
        raise ConfigError("metrics: must be a list of metric names, e.g. [mae, rmse]")
    result["metrics"] = metrics
    result["trainer"] = _with_defaults(result.get("trainer"), TRAINER_DEFAULTS, "trainer")
    result["trainer"]["guard"] = _with_defaults(
        result["trainer"]["guard"], TRAINER_DEFAULTS["guard"], "trainer.guard"
    )
    result["tracking"] = _with_defaults(result.get("tracking"), TRACKING_DEFAULTS, "tracking")
    trainer = result["trainer"]
    for key in ("epochs", "batch_size", "checkpoint_every", "log_every_n_steps"):
        value = trainer[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"trainer.{key}: {value!r} is not a positive integer")
    if trainer["patience"] is not None and (
        not isinstance(trainer["patience"], int) or trainer["patience"] < 1
    ):
        raise ConfigError(f"trainer.patience: {trainer['patience']!r} is not a positive integer")
    return result


def _script_spec(value: Any) -> dict[str, Any]:
    """``script: train.py`` or ``{path: train.py, entry: main, options: {...}}``, checked."""
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        raise ConfigError("script: give the path of a Python file, or {path: FILE, entry: NAME}")
    unknown = sorted(set(value) - {"path", "entry", "options"})
    if unknown:
        raise ConfigError(f"script.{unknown[0]}: not a known key; accepted: entry, options, path")
    entry = value.get("entry", "main")
    if not isinstance(entry, str) or not entry.isidentifier():
        raise ConfigError(f"script.entry: {entry!r} is not a function name")
    options = value.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError("script.options: must be a mapping (the script's own settings)")
    return {"path": value["path"], "entry": entry, "options": options}


def _with_defaults(value: Any, defaults: dict[str, Any], key: str) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a mapping; keys: {', '.join(sorted(defaults))}")
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}: not a known key; accepted: {', '.join(sorted(defaults))}"
        )
    return {**copy.deepcopy(defaults), **value}


def as_spec(value: Any, key: str) -> dict[str, Any]:
    """``'mse'`` → ``{'name': 'mse'}``; a mapping needs ``name`` or ``_target_``."""
    if isinstance(value, str):
        return {"name": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: {value!r} must be a built-in name or a mapping")
    if ("name" in value) == ("_target_" in value):
        raise ConfigError(
            f"{key}: give exactly one of 'name' (a built-in) or '_target_' (a dotted path)"
        )
    return dict(value)


def import_target(path: Any, key: str) -> Any:
    """The object at dotted ``path`` (``package.module.Name``)."""
    if not isinstance(path, str) or "." not in path:
        raise ConfigError(f"{key}._target_: {path!r} is not a dotted path like pkg.module.Class")
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{key}._target_: cannot import {path} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{key}._target_: {module_name} has no attribute {attr!r}") from None


def factory_of(
    spec: Mapping[str, Any], key: str, builtins: Mapping[str, Callable[..., Any]]
) -> tuple[Callable[..., Any], str]:
    """The class or function ``spec`` names (a built-in ``name`` or a ``_target_``) and
    how to name it in a message (``model.name gan``)."""
    if "_target_" in spec:
        return import_target(spec["_target_"], key), f"{key}._target_ {spec['_target_']}"
    name = spec["name"]
    factory = builtins.get(str(name).lower()) if isinstance(name, str) else None
    if factory is None:
        raise ConfigError(
            f"{key}.name: {name!r} is not a built-in {key}; built-ins: "
            f"{', '.join(sorted(builtins))}",
            hint=f"or give {key}._target_: a dotted path to your own class",
        )
    return factory, f"{key}.name {name}"


def build(
    spec: Mapping[str, Any],
    key: str,
    builtins: Mapping[str, Callable[..., Any]],
    *args: Any,
    **context: Any,
) -> Any:
    """Build the object ``spec`` describes: a built-in by ``name`` or a ``_target_``.

    ``args`` are passed positionally (an optimizer's parameters); ``context`` keyword
    arguments (``in_features``…) only where the callable accepts them and the spec does
    not set them itself.
    """
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "_target_")}
    factory, label = factory_of(spec, key, builtins)
    try:
        params = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, takes_any = {}, False
    for name, value in context.items():
        if name not in kwargs and (takes_any or name in params):
            kwargs[name] = value
    try:
        return factory(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{label}: wrong arguments {sorted(kwargs)} ({exc})") from exc
    except (ValueError, RuntimeError) as exc:  # e.g. a negative layer width
        raise ConfigError(f"{label}: cannot build it with {kwargs} ({exc})") from exc


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` → ``{'a.b': 1}`` (lists stay values); private keys dropped."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if str(key).startswith("_") and key != "_target_":
            continue
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
