"""Batch inference: a model over a whole file, written to another file (a CWL step).

:func:`predict_file` (``twin models predict MODEL INPUT OUTPUT``) runs a registered
version (``NAME@ALIAS``, ``NAME/VERSION``, ``NAME``) or an ONNX file over the rows of
INPUT — CSV, NPY, NPZ, NetCDF, HDF5 or a Zarr store, read as for training — in chunks of
``batch_size`` rows, and writes the outputs to OUTPUT: ``.npy`` (the first output),
``.npz`` (every output by name) or ``.csv`` (one column per output value, named after
the training target when known). For a registered version the feature names and the
sliding window default to what the model was trained on (its MLflow run's
``data.features`` and ``data.window``), and standardisation is applied as in serving.
Rows that do not fit the model's signature are refused with the signature named.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import numpy as np

from twinengine.ai.data import SUFFIXES, is_data, read_arrays, stack_columns, windows
from twinengine.ai.serving.bundle import ModelBundle, load_bundle, registry_bundle
from twinengine.ai.serving.deploy import RegistryRef, source_of
from twinengine.core.errors import ConfigError, InvalidInputError

OUTPUT_SUFFIXES = (".npy", ".npz", ".csv")


def _literal(value: str | None) -> Any:
    if value in (None, "", "None"):
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _trained_on(run: Any) -> dict[str, Any]:
    """Features, window and target names of the training run of a registered version."""
    params = run.data.params
    return {
        "features": _literal(params.get("data.features")),
        "window": _literal(params.get("data.window")),
        "target": _literal(params.get("data.target")),
    }


def open_model(model: str, tracking_uri: str | None = None) -> tuple[ModelBundle, dict]:
    """A bundle for a path (file or folder) or a registry reference, and what it was
    trained on (empty for a bare file)."""
    source = source_of(model, tracking_uri)
    if not isinstance(source, RegistryRef):
        return load_bundle(source), {}
    registry = source.registry()
    bundle = registry_bundle(registry, model)
    return bundle, _trained_on(registry.client.get_run(bundle.run_id))


def read_rows(path: Path, features: list[str] | None, window: int | None) -> np.ndarray:
    """The input rows of ``path`` (all numeric columns when ``features`` is None)."""
    if not is_data(path):
        raise InvalidInputError(f"no input file {path}")
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"input {path}: unknown format {path.suffix!r}; use one of {', '.join(SUFFIXES)}"
        )
    if fmt == "npy" and not features:
        x = np.load(path, allow_pickle=False)
    else:
        try:
            lookup, available = read_arrays(path, fmt)
        except ConfigError as exc:
            raise InvalidInputError(str(exc).replace("data.path", "input")) from None
        except Exception as exc:  # a corrupt file or wrong format
            raise InvalidInputError(f"cannot read {path} as {fmt} ({exc})") from None
        try:
            x = stack_columns(lookup, list(features or available), available, "--features")
        except ConfigError as exc:
            raise InvalidInputError(f"input {path}: {exc}") from None
    if window:
        if x.ndim != 2 or len(x) < window:
            raise InvalidInputError(
                f"input {path}: the model reads windows of {window} rows of 2-D features; "
                f"got shape {list(x.shape)}"
            )
        x = windows(x, window)
    return np.ascontiguousarray(x)


def write_outputs(path: Path, names: list[str], outputs: list[np.ndarray], columns: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, outputs[0], allow_pickle=False)
    elif suffix == ".npz":
        np.savez(path, **dict(zip(names, outputs, strict=True)))
    else:
        flat = [o.reshape(len(o), -1) for o in outputs]
        table = np.concatenate(flat, axis=1)
        targets = columns if isinstance(columns, list) else [columns] if columns else []
        header = [str(t) for t in targets] if len(targets) == table.shape[1] else []
        if not header:
            header = [
                f"{n}_{i}" if f.shape[1] > 1 else n
                for n, f in zip(names, flat, strict=True)
                for i in range(f.shape[1])
            ]
        np.savetxt(path, table, delimiter=",", header=",".join(header), comments="", fmt="%.8g")


def predict_file(
    model: str,
    input_path: str | Path,
    output_path: str | Path,
    *,
    features: list[str] | None = None,
    window: int | None = None,
    batch_size: int = 4096,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Predict every row of ``input_path`` into ``output_path``; a summary of what ran."""
    output = Path(output_path)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise InvalidInputError(
            f"output {output}: write .npy, .npz or .csv (got {output.suffix or 'no suffix'!r})"
        )
    if batch_size < 1:
        raise InvalidInputError(f"--batch-size must be at least 1, got {batch_size}")
    t0 = time.perf_counter()
    bundle, trained = open_model(model, tracking_uri)
    source = Path(input_path)
    if features is None and source.suffix.lower() != ".npy":  # a bare array has no names
        features = trained.get("features")
    x = read_rows(
        source,
        features,
        window if window is not None else trained.get("window"),
    )
    names = [s.name for s in bundle.signature.outputs]
    chunks: list[list[np.ndarray]] = []
    for start in range(0, len(x), batch_size):
        chunks.append(bundle.predict([x[start : start + batch_size]]))
    if not chunks:
        raise InvalidInputError(f"input {input_path} has no rows")
    outputs = [np.concatenate([c[i] for c in chunks]) for i in range(len(names))]
    write_outputs(output, names, outputs, trained.get("target"))
    summary = {
        "model": bundle.ref or str(bundle.path),
        "version": bundle.version,
        "rows": len(x),
        "output": str(output),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return summary
