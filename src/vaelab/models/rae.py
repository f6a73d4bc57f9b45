"""The regularised auto-encoder, RAE (Ghosh et al. 2020, "From variational to deterministic autoencoders").

A deterministic encoder and decoder trained on

    recon + β ½‖z‖² + λ R(decoder),

where ½‖z‖² keeps the codes near the origin (the VAE's KL without its noise) and R smooths the decoder:
``l2`` (RAE-L2) is the sum of the squares of the decoder's weights, ``gp`` (RAE-GP) the gradient penalty
‖∇_z ‖D(z)‖²‖², the squared gradient of the decoder's summed squared outputs with respect to the code, as
in the authors' code (``grad_pen_loss``: ``K.gradients(K.square(y_pred), embedding)``). Such a model has no
prior to generate from: it generates from its ex-post density (:mod:`vaelab.analysis.expost`, the
``expost`` measures), as the paper does.

Departures, for comparability inside vaelab. The reconstruction cost is the model's -log p(x|z) summed
over pixels (BCE by default), where the paper's code uses the squared error averaged over pixels; the
weights are the authors' MNIST values (``configurations/config.py``: β 1e-4 on the mean of z² over the 16
code dimensions, λ 1e-7 for RAE-L2 and 0.5e-7 for RAE-GP) rescaled to that sum: multiplied by the 1,024
pixels of their 32x32 images, and β by 2/16 for ½‖z‖² summed over 16 dimensions. So β = 0.0128 and λ =
1e-4 (l2) or 5e-5 (gp). The L2 penalty is on the decoder's weights, not its biases (weight decay's usual
reach). The penalties are averaged over the batch like the reconstruction.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from vaelab.models import base

DEFAULT_DECODER_WEIGHT = {"l2": 1e-4, "gp": 5e-5}  # the authors' MNIST λ, rescaled (module docstring)


class Settings(base.ModelSettings):
    """RAE: β (``code_weight``) on ½‖z‖², and λ (``decoder_weight``) on the decoder's penalty."""

    objective: Literal["rae"] = Field("rae", description="the model: its objective (overrides the preset)")
    code_weight: float = Field(0.0128, ge=0.0, description="rae: β, the weight of ½‖z‖² on the codes")
    decoder_penalty: Literal["l2", "gp"] = Field(
        "l2", description="rae: the decoder's regulariser, l2 (its weights' squares, RAE-L2) or gp (the gradient "
                          "penalty ‖∇_z ‖D(z)‖²‖², RAE-GP)")
    decoder_weight: float | None = Field(
        None, ge=0.0, description="rae: λ, the weight of the decoder's penalty [its penalty's: l2 1e-4, gp 5e-5]")

    @model_validator(mode="before")
    @classmethod
    def _the_penalty_s_own_weight(cls, values: Any) -> Any:
        # λ left out (or None) is the chosen penalty's own default, written into the settings (and the identity)
        if isinstance(values, dict) and values.get("decoder_weight") is None:
            values = {**values, "decoder_weight": DEFAULT_DECODER_WEIGHT.get(values.get("decoder_penalty", "l2"),
                                                                             DEFAULT_DECODER_WEIGHT["l2"])}
        return values

    @property
    def penalty_weight(self) -> float:
        """λ (never None once validated: left out, it is the penalty's own default)."""
        return DEFAULT_DECODER_WEIGHT[self.decoder_penalty] if self.decoder_weight is None else self.decoder_weight

    def prior_reason(self) -> str:
        return ": it has no prior to train against (it generates from its ex-post density)"

    def weight(self) -> tuple[str, str, float] | None:
        return ("code_weight", "β", self.code_weight)


def decoder_l2(decoder: torch.nn.Module) -> torch.Tensor:
    """The sum of the squares of the decoder's weights (every parameter of two or more dimensions)."""
    return sum((p.float().pow(2).sum() for p in decoder.parameters() if p.ndim >= 2),
               torch.zeros((), device=next(decoder.parameters()).device))


def gradient_penalty(decode, z: torch.Tensor) -> torch.Tensor:
    """‖∇_z ‖D(z)‖²‖², averaged over the batch: the squared gradient of each image's summed squared decoder
    output with respect to its code. Differentiable while training (so that training lowers it); measured,
    not differentiated, under ``torch.no_grad`` (the test loss)."""
    training = torch.is_grad_enabled()
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        energy = decode(z).float().pow(2).flatten(1).sum(1)
        (gradient,) = torch.autograd.grad(energy.sum(), z, create_graph=training)
    penalty = gradient.float().pow(2).sum(1).mean()
    return penalty if training else penalty.detach()


class Objective(base.Objective):
    """recon + β ½‖z‖² + λ R(decoder) on the deterministic code."""

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = False
    terms = ("loss", "recon", "code", "decoder")

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        code, _ = model.encode(x, labels)
        recon = -model.likelihood.log_prob(model.decode(code, labels), target).mean()
        code_penalty = 0.5 * code.float().pow(2).sum(1).mean()
        if self.settings.decoder_penalty == "l2":
            decoder_penalty = decoder_l2(model.decoder)
        else:
            decoder_penalty = gradient_penalty(lambda z: model.decode(z, labels), code)
        loss = recon + self.settings.code_weight * code_penalty + self.settings.penalty_weight * decoder_penalty
        return {"loss": loss, "recon": recon, "code": code_penalty, "decoder": decoder_penalty}


PRESETS = {
    "rae": {"encoder": "mlp", "decoder": "mlp", "objective": "rae", "prior": "normal"},  # RAE-L2
    "rae-gp": {"encoder": "mlp", "decoder": "mlp", "objective": "rae", "prior": "normal", "decoder_penalty": "gp"},
}
