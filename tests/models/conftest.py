"""Helpers the model tests share: small settings and hand-set mixture priors."""

from __future__ import annotations

from pathlib import Path

import torch

import vaelab
from vaelab.models.distributions import MixturePrior
from vaelab.training.trainer import TrainedRun

SMALL = dict(hidden=16, latent=3)


def first_and_last_epoch(model: str, data: Path, out: Path, epochs: int = 4) -> tuple[dict, dict]:
    """Train ``model`` (small) on the IDX folder ``data`` into ``out``: its first and last epochs' losses."""
    run = vaelab.train(model, out=out, dataset=f"idx:{data}", epochs=epochs, batch_size=20, **SMALL)
    return run.history[0], run.history[-1]


def assert_resumes_bit_for_bit(preset: str, data: Path, out: Path, **options) -> TrainedRun:
    """Train ``preset`` 2 epochs straight, and 1 epoch then resumed to 2 (a kill after epoch 1): the same
    weights, bit for bit. Returns the straight run (for a test's own checks)."""
    options = dict(dataset=f"idx:{data}", precision="fp32", **{**SMALL, **options})
    straight = vaelab.train(preset, out=out / "straight", epochs=2, **options)
    vaelab.train(preset, out=out / "resumed", epochs=1, **options)
    resumed = vaelab.train(None, out=out / "resumed", resume=True, epochs=2)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    return straight


def mixture_prior(means, variances, weights) -> MixturePrior:
    """A mixture prior with the given component means, variances and weights."""
    prior = MixturePrior(len(means[0]), len(means))
    with torch.no_grad():
        prior.means.copy_(torch.tensor(means, dtype=torch.float32))
        prior.logvars.copy_(torch.log(torch.tensor(variances, dtype=torch.float32)))
        prior.logits.copy_(torch.log(torch.tensor(weights, dtype=torch.float32)))
    return prior


def one_component_standard_normal(model) -> None:
    """Make a one-component mixture prior the standard normal (its weight is 1 already)."""
    with torch.no_grad():
        model.prior.means.zero_()
        model.prior.logvars.zero_()
