"""What the adversarial objectives share (FactorVAE, the AAE): a discriminator on codes, and its two losses.

A discriminator gives two logits per code, class 0 ("real": the sample the codes should look like) and
class 1 ("fake"). Each side learns only from its own loss: the model's term reaches the encoder through
the codes with the discriminator's weights held fixed (:func:`fixed_logits`), and the discriminator's
loss (:func:`discriminator_loss`) sees detached codes. Both train in one Adam step, the discriminator in
a parameter group of its own (:func:`param_groups`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Discriminator(torch.nn.Module):
    """An MLP on codes: ``layers`` hidden layers of ``width`` units with LeakyReLU(0.2), then 2 logits.

    Kim & Mnih's (FactorVAE) is 6 layers of 1,000; Makhzani et al.'s (AAE) 2 of 1,000 with ReLU.
    """

    def __init__(self, latent: int, width: int = 1000, layers: int = 6):
        super().__init__()
        parts: list[torch.nn.Module] = []
        size = latent
        for _ in range(layers):
            parts += [torch.nn.Linear(size, width), torch.nn.LeakyReLU(0.2)]
            size = width
        self.net = torch.nn.Sequential(*parts, torch.nn.Linear(size, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def fixed_logits(discriminator: Discriminator, z: torch.Tensor) -> torch.Tensor:
    """The discriminator's logits for ``z`` with its weights held fixed: gradients reach ``z`` only."""
    fixed = {name: p.detach() for name, p in discriminator.named_parameters()}
    return torch.func.functional_call(discriminator, fixed, (z,)).float()


def discriminator_loss(discriminator: Discriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of telling ``real`` (class 0) from ``fake`` (class 1), both detached, over all their rows."""
    logits = discriminator(torch.cat([real.detach(), fake.detach()])).float()
    truth = torch.cat([torch.zeros(len(real), dtype=torch.long), torch.ones(len(fake), dtype=torch.long)])
    return F.cross_entropy(logits, truth.to(logits.device))


def param_groups(model, discriminators: list[torch.nn.Module], lr: float | None = None,
                 betas: tuple[float, float] = (0.5, 0.9)) -> list[dict]:
    """Adam's groups: the model's own parameters at the run's rate, the discriminators' with their ``betas``
    (and rate ``lr``, the run's where None)."""
    own = [p for discriminator in discriminators for p in discriminator.parameters()]
    theirs = {id(p) for p in own}
    group: dict = {"params": own, "betas": betas}
    if lr is not None:
        group["lr"] = lr
    return [{"params": [p for p in model.parameters() if id(p) not in theirs]}, group]
