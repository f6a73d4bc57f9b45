"""A small convolutional classifier trained by vaelab: the feature extractor for generation measures.

Fréchet distances are only comparable between runs that use the same
extractor, so the extractor is fixed and described in every result:
``conv16-conv32-fc128`` (Conv 16@5x5, max-pool, Conv 32@5x5, max-pool,
Dense 128 = the features, Dense K), ReLU, trained with Adam (lr 1e-3, batch
128) for ``epochs`` epochs on the data set's training split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from vaelab.data.dataset import Dataset, to_tensor
from vaelab.errors import DataError, notice
from vaelab.io import read_json, write_json, write_safetensors
from vaelab.records import CLASSIFIER_JSON, WEIGHTS
from vaelab.seeding import seeded_torch, torch_generator

EXTRACTOR = "conv16-conv32-fc128"


class DigitClassifier(nn.Module):
    """Conv 16@5x5 -> pool -> Conv 32@5x5 -> pool -> Dense 128 (features) -> Dense K.

    Sized from the images: the first layer reads their C channels, the dense layer the
    32 x (H/4) x (W/4) pooled features (32 x 7 x 7 at 28x28).
    """

    def __init__(self, n_classes: int = 10, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        channels, height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of images (N, C, H, W)."""
        return self.head(self.body(x))

    @torch.no_grad()
    def features_and_probabilities(self, images: torch.Tensor, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """128-d features and class probabilities of images (N, C, H, W) in [0, 1]."""
        self.eval()
        device = next(self.parameters()).device
        feats, probs = [], []
        for start in range(0, len(images), batch):
            h = self.body(images[start:start + batch].to(device))
            feats.append(h.cpu())
            probs.append(F.softmax(self.head(h), dim=1).cpu())
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def train_classifier(data: Dataset, seed: int, epochs: int = 4,
                     device: torch.device | str = "cpu") -> tuple[DigitClassifier, float]:
    """Train the classifier on the training split (on ``device``); return it and its test accuracy."""
    n_classes = len(data.class_names)
    with seeded_torch(seed, "classifier-init"):
        model = DigitClassifier(n_classes, data.image_shape)
    model.to(device)
    images, labels = to_tensor(data.train_images).to(device), torch.from_numpy(data.train_labels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=torch_generator(seed, "classifier-batches", epoch)).to(device)
        for start in range(0, len(images), 128):
            idx = order[start:start + 128]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _, probs = model.features_and_probabilities(to_tensor(data.test_images))
    accuracy = float((probs.argmax(1) == data.test_labels).mean())
    return model, accuracy


def load_or_train_classifier(folder: Path, data: Dataset, seed: int, epochs: int = 4,
                             device: torch.device | str = "cpu") -> tuple[DigitClassifier, dict]:
    """The classifier saved in ``folder`` for this data set and seed (trained there first if missing), on ``device``."""
    if min(data.image_shape[1:]) < 4:
        shape = "x".join(map(str, data.image_shape))
        raise DataError(f"the feature classifier ({EXTRACTOR}) pools twice and needs images of at least 4x4, and "
                        f"{data.name} has {shape}: leave out the generation and perturbation measures (e.g. "
                        "--measures separation,knn,probe,clustering,map,health,likelihood)")
    folder = Path(folder)
    info_path, weights_path = folder / CLASSIFIER_JSON, folder / WEIGHTS
    # The data's fingerprint too: a cache made from other data (a swapped idx: folder) is rebuilt.
    wanted = {"extractor": EXTRACTOR, "dataset": data.name, "data_fingerprint": data.fingerprint,
              "seed": seed, "epochs": epochs}
    cached = _load_cached(info_path, weights_path, wanted, len(data.class_names), data.image_shape)
    if cached is not None:
        model, info = cached
        return model.to(device).eval(), info
    model, accuracy = train_classifier(data, seed, epochs, device)
    write_safetensors(weights_path, model.state_dict())
    info = {**wanted, "test_accuracy": accuracy}
    write_json(info_path, info)
    model.eval()
    return model, info


def _load_cached(info_path: Path, weights_path: Path, wanted: dict, n_classes: int,
                 image_shape: tuple[int, int, int]):
    """The cached classifier if it is whole and made for ``wanted``; None means: train it again.

    A stale cache (other data, seed or epochs) or a damaged one (unreadable JSON or
    weights, weights of another shape) is rebuilt, never used; a damaged one is named.
    """
    if not (info_path.is_file() and weights_path.is_file()):
        return None
    try:
        info = read_json(info_path)
        if not isinstance(info, dict) or {k: info.get(k) for k in wanted} != wanted:
            return None
        model = DigitClassifier(n_classes, image_shape)
        model.load_state_dict(load_file(str(weights_path)))
        return model, info
    except (ValueError, OSError, RuntimeError, SafetensorError):  # JSON, file and shape errors
        notice(f"the cached classifier in {info_path.parent} is damaged: training it again")
        return None
