"""The files of a trained model, as ``twin train`` writes them to its run's ``model``
artifact folder and as the registry, serving and ``--export-model`` read them."""

from __future__ import annotations

ONNX_FILE = "model.onnx"  # the exported graph (served by ONNX Runtime)
STATE_FILE = "model.pt"  # the final state_dict
META_FILE = "model_meta.json"  # what rebuilds the module of a model.pt (serving without ONNX)
SCALING_FILE = "standardize.json"  # the inputs' mean and std from the training data

#: every file of a model, in the order they are copied
MODEL_FILES = (ONNX_FILE, STATE_FILE, META_FILE, SCALING_FILE)
