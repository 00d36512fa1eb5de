"""Built-in models, losses, optimizers and metrics that a config names by a short name.

A scientist writes ``model: {name: mlp, hidden: [64, 64]}``; a developer writes
``model: {_target_: mypkg.nets.MyNet, width: 128}`` instead. Built-in models take
``in_features`` and ``out_features`` (filled from the data) plus their own options:
``mlp``, ``linear`` and ``gan`` read ``(batch, features)``; ``lstm``, ``gru``, ``cnn1d``
and ``encoder_decoder`` read ``(batch, time, features)`` (a 2-D batch is taken as a
sequence of length one for the recurrent models, and as a one-channel signal for
``cnn1d``). Metrics are functions of
``(prediction, target)`` tensors returning a float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
}


def _activation(name: str) -> nn.Module:
    from twinengine.core.errors import ConfigError

    if name not in ACTIVATIONS:
        raise ConfigError(
            f"model.activation: {name!r} is not known; accepted: {', '.join(sorted(ACTIVATIONS))}"
        )
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """Fully connected layers ``in_features → hidden… → out_features``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if isinstance(hidden, int):
            hidden = [hidden]
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, int(size)), _activation(activation)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def rnn(cell: str, in_features: int, hidden: int, layers: int, dropout: float) -> nn.Module:
    """An LSTM (``cell="lstm"``) or GRU over ``(batch, time, features)`` inputs; dropout
    between layers only (PyTorch refuses it with one layer)."""
    kind = nn.LSTM if cell == "lstm" else nn.GRU
    return kind(
        in_features,
        int(hidden),
        num_layers=int(layers),
        batch_first=True,
        dropout=dropout if layers > 1 else 0.0,
    )


class Recurrent(nn.Module):
    """An LSTM or GRU over the time axis; a linear head reads the last step."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.0,
        cell: str = "lstm",
    ) -> None:
        super().__init__()
        self.rnn = rnn(cell, in_features, hidden, layers, dropout)
        self.head = nn.Linear(int(hidden), out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def lstm(
    in_features: int, out_features: int, hidden: int = 64, layers: int = 1, dropout: float = 0.0
) -> Recurrent:
    """An LSTM regressor/classifier over ``(batch, time, features)``."""
    return Recurrent(in_features, out_features, hidden, layers, dropout, cell="lstm")


def gru(
    in_features: int, out_features: int, hidden: int = 64, layers: int = 1, dropout: float = 0.0
) -> Recurrent:
    """A GRU regressor/classifier over ``(batch, time, features)``."""
    return Recurrent(in_features, out_features, hidden, layers, dropout, cell="gru")


class CNN1d(nn.Module):
    """1-D convolutions over time (channels = features), global average pool, linear head."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        activation: str = "relu",
        input_shape: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.one_channel = len(input_shape) == 1
        width = 1 if self.one_channel else in_features
        layers: list[nn.Module] = []
        for size in channels:
            layers += [
                nn.Conv1d(width, int(size), kernel_size, padding=kernel_size // 2),
                _activation(activation),
            ]
            width = int(size)
        self.conv = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1) if x.dim() == 2 else x.transpose(1, 2)  # → (batch, channel, time)
        return self.head(self.conv(x).mean(dim=2))


def linear(in_features: int, out_features: int) -> nn.Module:
    """A single linear layer (linear regression)."""
    return MLP(in_features, out_features, hidden=[])


MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn1d": CNN1d,
    "gru": gru,
    "linear": linear,
    "lstm": lstm,
    "mlp": MLP,
}

LOSSES: dict[str, Callable[..., nn.Module]] = {
    "bce": nn.BCEWithLogitsLoss,
    "cross_entropy": nn.CrossEntropyLoss,
    "huber": nn.HuberLoss,
    "mae": nn.L1Loss,
    "mse": nn.MSELoss,
    "smooth_l1": nn.SmoothL1Loss,
}

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "sgd": torch.optim.SGD,
}


def _mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(torch.mean((pred - target) ** 2))


def _r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    total = torch.sum((target - target.mean(dim=0)) ** 2)
    return float(1 - torch.sum((pred - target) ** 2) / total) if total > 0 else float("nan")


def _accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    if pred.dim() > 1 and pred.shape[-1] > 1:  # class scores against class indices
        return float((pred.argmax(-1) == target.reshape(-1).long()).float().mean())
    return float(((pred > 0).float() == target).float().mean())  # logits of a binary label


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "accuracy": _accuracy,
    "mae": lambda pred, target: float(torch.mean(torch.abs(pred - target))),
    "mse": _mse,
    "r2": _r2,
    "rmse": lambda pred, target: _mse(pred, target) ** 0.5,
}


# the encoder-decoder and the GAN build on MLP above (twinengine.ai.generative)
from twinengine.ai.generative import GAN, EncoderDecoder  # noqa: E402

MODELS.update({"encoder_decoder": EncoderDecoder, "gan": GAN})
