"""What a deployment serves: a model file or a registry version, loaded and ready to run.

:func:`load_bundle` opens an ONNX file (or a folder holding ``model.onnx``) with ONNX
Runtime and, when a ``standardize.json`` lies beside it (written by ``twin train`` for
``data.standardize: true``), scales the first input with the training mean and standard
deviation before the model sees it — so clients send raw feature values, as they would
to the twin. :func:`registry_bundle` does the same for a registry reference
(``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME``) and remembers which version and training run
it got, so a deployment can tell when an alias has moved. A version
without an ONNX file is served by PyTorch from its ``model.pt``, rebuilt from the
``model_meta.json`` that ``twin train`` writes beside it (:class:`TorchSession`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twinengine.ai.artifacts import META_FILE, ONNX_FILE, SCALING_FILE, STATE_FILE
from twinengine.ai.serving.batching import Signature
from twinengine.core.errors import ConfigError, NotFoundError


def open_session(path: Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session on ``path`` (a clear error when it is not a model)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ConfigError(f"cannot load ONNX model {path}: {exc}") from None


class ScaledSession:
    """An ONNX session whose first input is standardized before each run."""

    def __init__(self, session: Any, mean: np.ndarray, std: np.ndarray) -> None:
        self.session = session
        self.first = session.get_inputs()[0].name
        self.mean = mean.astype(np.float32)
        self.scale = (1.0 / np.where(std == 0, 1.0, std)).astype(np.float32)

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feeds[self.first]
        scaled = ((x - self.mean) * self.scale).astype(x.dtype, copy=False)
        return self.session.run(names, {**feeds, self.first: scaled})


@dataclass
class ModelBundle:
    """A loaded model: its session, signature and where it came from."""

    name: str
    path: Path
    session: Any
    signature: Signature
    ref: str | None = None
    version: int | None = None
    scaled: bool = False
    run_id: str | None = None  # the training run of a registry version

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": str(self.path),
            "ref": self.ref,
            "version": self.version,
            "standardized_inputs": self.scaled,
            **self.signature.as_dict(),
        }

    def predict(self, arrays: dict[str, Any] | list[Any]) -> list[np.ndarray]:
        """Check ``arrays`` against the signature and run the model once (no batching)."""
        return self.run(self.signature.check(arrays))

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        """Run the model once on arrays already checked against the signature."""
        names = [s.name for s in self.signature.outputs]
        return self.session.run(names, dict(zip(self._inputs, feeds, strict=True)))

    @property
    def _inputs(self) -> list[str]:
        return [s.name for s in self.signature.inputs]


def _scaling(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    path = folder / SCALING_FILE
    if not path.is_file():
        return None
    try:
        stats = json.loads(path.read_text())
        return np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a valid scaling file ({exc})") from None


@dataclass(frozen=True)
class _Node:
    name: str
    shape: list[Any]
    type: str = "tensor(float)"


class TorchSession:
    """A ``model.pt`` state_dict served by PyTorch, shaped like an ONNX Runtime session
    (for versions without an ONNX file); rebuilt from ``model_meta.json``."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        import torch

        from twinengine.ai.config import build
        from twinengine.ai.models import MODELS

        meta = json.loads((folder / META_FILE).read_text())
        shape = list(meta["input_shape"])
        model = build(
            meta["model"],
            "model",
            MODELS,
            in_features=shape[-1],
            out_features=meta["out_features"],
            input_shape=tuple(shape),
        )
        model.load_state_dict(torch.load(folder / STATE_FILE, weights_only=True))
        torch.set_num_threads(threads)
        self.torch, self.model = torch, model.eval()
        self.inputs = [_Node("input", ["batch", *shape])]
        self.outputs = [_Node("output", ["batch", meta["out_features"]])]

    def get_inputs(self) -> list[_Node]:
        return self.inputs

    def get_outputs(self) -> list[_Node]:
        return self.outputs

    def run(self, names: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self.torch.no_grad():
            out = self.model(self.torch.from_numpy(np.ascontiguousarray(feeds["input"])))
        return [out.numpy()]


def load_bundle(
    model: str | Path,
    *,
    threads: int = 1,
    name: str | None = None,
    ref: str | None = None,
    version: int | None = None,
) -> ModelBundle:
    """Load an ``.onnx`` file, or the ``model.onnx`` of a folder, with its input scaling."""
    path = Path(model)
    if path.is_dir():
        torch_only = not (path / ONNX_FILE).is_file() and (path / META_FILE).is_file()
        path = path / (STATE_FILE if torch_only else ONNX_FILE)
    if not path.is_file():
        raise NotFoundError(f"no ONNX model at {path}", hint="give the path of a .onnx file")
    if path.suffix == ".pt":
        try:
            session: Any = TorchSession(path.parent, threads)
        except Exception as exc:  # a model that cannot be rebuilt: say which and why
            raise ConfigError(f"cannot rebuild the PyTorch model in {path.parent}: {exc}") from None
    else:
        session = open_session(path, threads)
    scaling = _scaling(path.parent)
    if scaling is not None:
        width = session.get_inputs()[0].shape[-1]
        if isinstance(width, int) and width != scaling[0].size:
            raise ConfigError(
                f"{path.parent / SCALING_FILE}: {scaling[0].size} feature(s), the model's "
                f"first input has {width}"
            )
        session = ScaledSession(session, *scaling)
    signature = Signature.from_session(session)
    return ModelBundle(
        name or path.stem, path, session, signature, ref, version, scaling is not None
    )


def registry_bundle(registry: Any, ref: str, *, threads: int = 1, found: Any = None) -> ModelBundle:
    """Load the version ``ref`` designates (``NAME@ALIAS``, ``NAME/VERSION``, ``NAME``);
    ``found``: its MLflow ModelVersion when the caller has just looked it up."""
    found = found if found is not None else registry.version_of(ref)
    folder = registry.folder(found)
    name = found.name
    if not (folder / ONNX_FILE).is_file() and not (folder / META_FILE).is_file():
        raise NotFoundError(
            f"{name} version {found.version} has no ONNX file (model.onnx) to serve",
            hint="retrain with trainer.onnx=true so that the model can be served",
        )
    bundle = load_bundle(folder, threads=threads, name=name, ref=ref, version=int(found.version))
    bundle.run_id = found.run_id
    return bundle
