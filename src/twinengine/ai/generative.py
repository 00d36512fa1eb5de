"""Built-in encoder-decoder and GAN models (``model.name: encoder_decoder`` / ``gan``).

:class:`EncoderDecoder` is a sequence-to-sequence network: a GRU or LSTM encoder reads
``(batch, time, features)`` (a 2-D batch is a sequence of one step), and a decoder of the
same kind unrolls ``horizon`` steps from the encoder's state, each step's output fed to
the next; the output is ``(batch, horizon * per-step targets)`` — a forecast of
``horizon`` future values, or, with ``horizon: 1`` and the features as the target, an
autoencoder whose reconstruction error flags anomalies. :class:`GAN` is a conditional
generative adversarial network: a generator ``G(x, z) → y`` and a discriminator
``D(x, y) → real/fake`` trained adversarially by its own :meth:`GAN.train_step` (two Adam
optimizers, binary cross-entropy), plus ``reconstruction`` times the config's loss between
``G(x, 0)`` and ``y`` so that the mode it predicts follows the data. Its ``forward(x)``
is ``G(x, 0)`` (what validation, serving and ONNX use); :meth:`GAN.sample` draws
``G(x, z)`` with random ``z`` — the simulated spread of a detector response, for example.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from twinengine.core.errors import ConfigError


class EncoderDecoder(nn.Module):
    """Sequence to sequence over time (see the module docstring)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: int = 64,
        layers: int = 1,
        horizon: int = 1,
        cell: str = "gru",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(horizon, int) or horizon < 1 or out_features % horizon:
            raise ConfigError(
                f"model.horizon: {horizon!r} must be a positive integer dividing the "
                f"{out_features} target value(s) per sample (horizon steps × targets)"
            )
        if cell not in ("gru", "lstm"):
            raise ConfigError(f"model.cell: {cell!r} is not known; accepted: gru, lstm")
        from twinengine.ai.models import rnn  # models registers this module's classes

        self.horizon, self.per_step = horizon, out_features // horizon
        self.encoder = rnn(cell, in_features, hidden, layers, dropout)
        self.decoder = rnn(cell, self.per_step, hidden, layers, dropout)
        self.head = nn.Linear(int(hidden), self.per_step)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        _, state = self.encoder(x)
        step = x.new_zeros((x.shape[0], 1, self.per_step))
        outputs = []
        for _ in range(self.horizon):
            out, state = self.decoder(step, state)
            step = self.head(out)
            outputs.append(step)
        return torch.cat(outputs, dim=1).flatten(1)


class GAN(nn.Module):
    """A conditional GAN trained by :meth:`train_step` (see the module docstring)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        latent: int = 8,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        lr: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.999),
        reconstruction: float = 1.0,
        input_shape: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if not isinstance(latent, int) or latent < 1:
            raise ConfigError(f"model.latent: {latent!r} must be a positive integer")
        width = int(math.prod(input_shape)) if input_shape else in_features
        self.latent, self.out_features = latent, out_features
        self.lr, self.betas, self.reconstruction = float(lr), tuple(betas), float(reconstruction)
        from twinengine.ai.models import MLP  # models registers this module's classes

        self.generator = MLP(width + latent, out_features, hidden, activation)
        self.discriminator = MLP(width + out_features, 1, hidden, activation)
        self._optimizers: tuple[Any, Any] | None = None
        self._bce = nn.BCEWithLogitsLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.generator(torch.cat([x, x.new_zeros((x.shape[0], self.latent))], dim=1))

    def sample(self, x: torch.Tensor, samples: int = 1) -> torch.Tensor:
        """``samples`` draws of ``G(x, z)`` per row: ``(samples, batch, out_features)``."""
        x = x.flatten(1)
        with torch.no_grad():
            draws = [
                self.generator(torch.cat([x, torch.randn(x.shape[0], self.latent)], dim=1))
                for _ in range(samples)
            ]
        return torch.stack(draws)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, loss_fn: Any) -> torch.Tensor:
        """One discriminator and one generator update on a batch; the generator's loss."""
        if self._optimizers is None:
            self._optimizers = (
                torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=self.betas),
            )
        g_opt, d_opt = self._optimizers
        x, y = x.flatten(1), y.reshape(len(y), -1).to(x.dtype)
        noise = torch.randn(x.shape[0], self.latent, dtype=x.dtype)
        fake = self.generator(torch.cat([x, noise], dim=1))
        real_label, fake_label = torch.ones(len(x), 1), torch.zeros(len(x), 1)
        d_opt.zero_grad()
        d_loss = self._bce(self.discriminator(torch.cat([x, y], 1)), real_label) + self._bce(
            self.discriminator(torch.cat([x, fake.detach()], 1)), fake_label
        )
        d_loss.backward()
        d_opt.step()
        g_opt.zero_grad()
        g_loss = self._bce(self.discriminator(torch.cat([x, fake], 1)), real_label)
        if self.reconstruction:
            g_loss = g_loss + self.reconstruction * loss_fn(self.forward(x), y)
        g_loss.backward()
        g_opt.step()
        return g_loss.detach()
