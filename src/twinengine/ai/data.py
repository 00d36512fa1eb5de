"""Training data: read features and targets from a file, window, split and standardise.

``data`` names a file (CSV, NPY, NPZ, NetCDF or HDF5) or a Zarr store (the format comes
from the suffix or ``data.format``), the ``features`` and the ``target`` (CSV column
names, NPZ array names, NetCDF/Zarr variables or HDF5 dataset paths; column indices for
a 2-D NPY array), the ``val_fraction`` held out for validation, ``standardize``
(features scaled with the mean and standard deviation of the training part) and an
optional ``window``: sliding windows of that many rows turn a 2-D table into
``(samples, window, features)`` sequences for the recurrent and convolutional models,
each predicting the target of its last row. A developer's own ``torch`` Dataset class
(``data._target_``, its arguments beside it) is read item by item instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twinengine.core.errors import ConfigError

FORMATS = ("csv", "hdf5", "netcdf", "npy", "npz", "zarr")
SUFFIXES = {
    ".csv": "csv",
    ".txt": "csv",
    ".npy": "npy",
    ".npz": "npz",
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".zarr": "zarr",
}
KEYS = ("features", "format", "path", "shuffle", "standardize", "target", "val_fraction", "window")


@dataclass
class PreparedData:
    """Arrays ready for training (float32), with what is needed to reproduce the scaling."""

    path: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    features: list[str]
    targets: list[str]
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def out_features(self) -> int:
        return int(np.prod(self.y_train.shape[1:])) if self.y_train.ndim > 1 else 1


def _names(value: Any, key: str) -> list[Any]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
        return list(value)
    raise ConfigError(f"{key}: {value!r} must be a name or a non-empty list of names")


def is_data(path: Path) -> bool:
    """A data file, or a Zarr store (a ``.zarr`` folder)."""
    return path.is_file() or (path.is_dir() and path.suffix.lower() == ".zarr")


def windows(x: np.ndarray, window: int) -> np.ndarray:
    """Every ``window`` consecutive rows of 2-D ``x``: shape ``(n - window + 1, window,
    features)`` (a view)."""
    return np.lib.stride_tricks.sliding_window_view(x, window, axis=0).transpose(0, 2, 1)


def read_arrays(path: Path, fmt: str) -> tuple[Any, list[str]]:
    """``(lookup(name) -> array, available names)`` for the file."""
    if fmt == "csv":
        import pandas as pd

        frame = pd.read_csv(path)
        return (lambda name: frame[name].to_numpy()), [str(c) for c in frame.columns]
    if fmt == "npz":
        arrays = dict(np.load(path, allow_pickle=False))
        return arrays.__getitem__, sorted(arrays)
    if fmt == "npy":
        table = np.load(path, allow_pickle=False)
        if table.ndim != 2:
            raise ConfigError(f"data.path: {path} holds a {table.ndim}-D array; NPY needs 2-D")
        return (lambda i: table[:, int(i)]), [str(i) for i in range(table.shape[1])]
    if fmt in ("netcdf", "zarr"):
        import xarray as xr

        opened = xr.open_zarr(path) if fmt == "zarr" else xr.open_dataset(path)
        with opened as ds:
            arrays = {str(k): v.values for k, v in ds.data_vars.items()}
        return arrays.__getitem__, sorted(arrays)
    import h5py

    with h5py.File(path, "r") as h5:
        arrays = {}
        h5.visititems(lambda n, o: arrays.__setitem__(n, o[()]) if hasattr(o, "shape") else None)
    return arrays.__getitem__, sorted(arrays)


def stack_columns(lookup: Any, names: list[Any], available: list[str], key: str) -> np.ndarray:
    arrays = []
    for name in names:
        if str(name) not in available:
            shown = ", ".join(available[:20])
            raise ConfigError(f"{key}: {name!r} is not in the data file; it has: {shown}")
        arrays.append(np.asarray(lookup(name)))
    lengths = {a.shape[0] if a.ndim else 0 for a in arrays}
    if len(lengths) != 1:
        raise ConfigError(f"{key}: the arrays {names} have different lengths {sorted(lengths)}")
    if len(arrays) == 1 and arrays[0].ndim >= 2:
        return arrays[0]
    if any(a.ndim != 1 for a in arrays):
        raise ConfigError(f"{key}: several names must each be 1-D (one value per sample)")
    return np.stack(arrays, axis=1)


def load_data(spec: dict[str, Any], base: str | Path = ".", seed: int = 0) -> PreparedData:
    """Read, window, split and standardise the data described by the ``data`` section."""
    if "_target_" in spec:
        path, x, y, features, targets, fmt = _from_dataset(spec)
        window = None
    else:
        path, x, y, features, targets, fmt = _from_file(spec, base)
        window = spec.get("window")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ConfigError(f"data.path: {path} has missing values (NaN) in the chosen columns")
    fraction = spec.get("val_fraction", 0.2)
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ConfigError(f"data.val_fraction: {fraction!r} must be a number in [0, 1)")
    n_val = round(len(x) * fraction)
    if len(x) - n_val < 1:
        raise ConfigError(f"data.path: {path} has too few samples ({len(x)}) to train on")
    shuffle = spec.get("shuffle", window is None)  # time windows: validate on the last part
    order = np.random.default_rng(seed).permutation(len(x)) if shuffle else np.arange(len(x))
    train, val = order[: len(x) - n_val], order[len(x) - n_val :]
    data = PreparedData(
        path,
        x[train],
        y[train],
        x[val],
        y[val],
        [str(f) for f in features],
        [str(t) for t in targets],
        info={"format": fmt, "samples": len(x)},
    )
    standardize = spec.get("standardize", False)
    if not isinstance(standardize, bool):
        raise ConfigError(f"data.standardize: {standardize!r} must be true or false")
    if standardize:
        axes = tuple(range(data.x_train.ndim - 1))  # per feature (last axis)
        data.mean = data.x_train.mean(axis=axes)
        data.std = data.x_train.std(axis=axes) + 1e-8
        data.x_train = (data.x_train - data.mean) / data.std
        data.x_val = (data.x_val - data.mean) / data.std
    return data


#: keys of the data section that are not a custom Dataset's own arguments
SPLIT_KEYS = ("shuffle", "standardize", "val_fraction")


def _from_dataset(spec: dict[str, Any]) -> tuple[Path, np.ndarray, np.ndarray, list, list, str]:
    """A developer's own ``torch.utils.data.Dataset`` (``data._target_``), as arrays: every
    item ``(x, y)`` is read once and stacked; the other keys are its arguments."""
    from twinengine.ai.config import import_target

    target = str(spec["_target_"])
    factory = import_target(target, "data")
    kwargs = {k: v for k, v in spec.items() if k != "_target_" and k not in SPLIT_KEYS}
    if "window" in kwargs:
        raise ConfigError("data.window: only for data files; a Dataset yields its own samples")
    try:
        dataset = factory(**kwargs)
        items = [dataset[i] for i in range(len(dataset))]
    except ConfigError:
        raise
    except Exception as exc:  # the developer's code: say which and why
        raise ConfigError(f"data._target_ {target}: cannot read its items ({exc})") from exc
    if not items:
        raise ConfigError(f"data._target_ {target}: the dataset is empty")
    if not all(isinstance(item, (tuple, list)) and len(item) == 2 for item in items[:1]):
        raise ConfigError(f"data._target_ {target}: items must be (features, target) pairs")
    try:
        x = np.stack([np.asarray(item[0], dtype=np.float32) for item in items])
        y = np.stack([np.asarray(item[1], dtype=np.float32) for item in items])
    except ValueError as exc:
        raise ConfigError(f"data._target_ {target}: items of different shapes ({exc})") from None
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    names = [f"x{i}" for i in range(x.shape[-1])]
    return Path(target), x, y, names, [f"y{i}" for i in range(y.shape[-1])], "dataset"


def _from_file(
    spec: dict[str, Any], base: str | Path
) -> tuple[Path, np.ndarray, np.ndarray, list, list, str]:
    """Features and target read from the data file the section names."""
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"data.{unknown[0]}: not a known key; accepted: {', '.join(KEYS)} "
            "(or _target_: your own Dataset class, with its arguments)"
        )
    for key in ("path", "features", "target"):
        if spec.get(key) is None:
            raise ConfigError(f"data.{key}: missing; the data section needs {key}")
    path = Path(str(spec["path"])).expanduser()
    if not path.is_absolute():
        path = Path(base) / path
    if not is_data(path):
        raise ConfigError(
            f"data.path: no such file {path}",
            hint="relative paths are resolved against the folder of the config file",
        )
    fmt = spec.get("format") or SUFFIXES.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ConfigError(
            f"data.format: {fmt or path.suffix!r} is not a known format; accepted: "
            f"{', '.join(FORMATS)} (or a file ending in {', '.join(sorted(SUFFIXES))})"
        )
    try:
        lookup, available = read_arrays(path, fmt)
    except ConfigError:
        raise
    except Exception as exc:  # a corrupt file or wrong format: say which file and why
        raise ConfigError(f"data.path: cannot read {path} as {fmt} ({exc})") from exc
    features = _names(spec["features"], "data.features")
    targets = _names(spec["target"], "data.target")
    x = stack_columns(lookup, features, available, "data.features").astype(np.float32)
    y = stack_columns(lookup, targets, available, "data.target").astype(np.float32)
    if x.shape[0] != y.shape[0]:
        raise ConfigError(
            f"data.target: {y.shape[0]} samples but data.features has {x.shape[0]}; "
            "features and target need one row per sample"
        )
    window = spec.get("window")
    if window is not None:
        if not isinstance(window, int) or window < 1 or x.ndim != 2 or window > len(x):
            raise ConfigError(
                f"data.window: {window!r} must be a positive integer no larger than the "
                f"{len(x)} rows, over 2-D features (these are {x.ndim}-D)"
            )
        x, y = np.ascontiguousarray(windows(x, window)), y[window - 1 :]
    return path, x, y, features, targets, fmt
