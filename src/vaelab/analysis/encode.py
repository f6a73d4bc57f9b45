"""Encode a data split into latent codes and save them as NPZ."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vaelab.data.dataset import to_tensor
from vaelab.errors import RunError
from vaelab.io import write_npz
from vaelab.models.base import INFERENCE_BATCH


@dataclass
class Codes:
    """Latent codes of one split: posterior means, log-variances (None for the AE), labels, and the images'
    generating factors where the data knows them (dsprites)."""

    mean: np.ndarray  # float32 (N, latent)
    logvar: np.ndarray | None
    labels: np.ndarray  # int64 (N,)
    factors: np.ndarray | None = None  # int64 (N, K)

    def save(self, path: str | Path) -> None:
        """Write an NPZ with arrays ``mean``, ``labels``, and ``logvar`` and ``factors`` where they exist, atomically."""
        arrays = {"mean": self.mean, "labels": self.labels}
        if self.logvar is not None:
            arrays["logvar"] = self.logvar
        if self.factors is not None:
            arrays["factors"] = self.factors
        write_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "Codes":
        """Read codes written by :meth:`save` (pickles are refused)."""
        path = Path(path)
        if not path.is_file():
            raise RunError(f"{path}: no such codes file: run `vaelab encode` first")
        try:
            with np.load(path, allow_pickle=False) as npz:
                return cls(npz["mean"], npz["logvar"] if "logvar" in npz.files else None, npz["labels"],
                           npz["factors"] if "factors" in npz.files else None)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # incl. "pickled data" on junk
            raise RunError(f"{path} is damaged or not a vaelab codes file: write it again with "
                           "`vaelab encode RUN_DIR --out FILE`") from None


@torch.no_grad()
def encode_images(model, images: torch.Tensor, labels=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior means and log-variances of ``images`` (float (N, 1, H, W)), in batches, on the model's device.

    ``labels`` (N,): the images' classes, which a conditional model (the CVAE) needs.
    """
    model.eval()
    images = images.to(model.device)
    labels = torch.as_tensor(labels) if labels is not None else None
    means, logvars = [], []
    for start in range(0, len(images), INFERENCE_BATCH):
        batch_labels = labels[start:start + INFERENCE_BATCH] if labels is not None else None
        mean, logvar = model.encode(images[start:start + INFERENCE_BATCH], batch_labels)
        means.append(mean.float().cpu())
        if logvar is not None:
            logvars.append(logvar.float().cpu())
    mean = torch.cat(means).numpy()
    return mean, (torch.cat(logvars).numpy() if logvars else None)


def encode_split(model, images_uint8: np.ndarray, labels: np.ndarray, factors: np.ndarray | None = None) -> Codes:
    """Codes of a uint8 image split (``factors``: the images' generating factors, kept beside the codes)."""
    labels = np.asarray(labels, dtype=np.int64)
    mean, logvar = encode_images(model, to_tensor(images_uint8), labels)
    return Codes(mean, logvar, labels, None if factors is None else np.asarray(factors, dtype=np.int64))
