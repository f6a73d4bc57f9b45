"""TensorBoard logging of a run (``--log tensorboard``; the optional extra ``vaelab[tensorboard]``).

Per run, into its log folder (``RUN/tensorboard``; a study's cells under ``STUDY/tensorboard/DATASET/CELL``):
the loss terms of every epoch (``train/…``, ``test/…``), the first test images' reconstructions and
prior draws every ``every`` epochs and at the last, the measures once a study has evaluated the cell
(``measures/…``), and the test codes with their class names and image sprite in the projector's format, so
that TensorBoard's projector shows the codes the report maps. Written with torch's own writer
(``torch.utils.tensorboard``), which needs the ``tensorboard`` package; read back in the tests with
TensorBoard's own reader.

Logging draws nothing from the training's random streams (prior draws come from their own seeded
generator) and decodes in eval mode without gradients, restoring the mode: a logged run's weights are
those of an unlogged one, bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaelab.data.dataset import to_tensor
from vaelab.errors import ConfigError
from vaelab.seeding import torch_generator

LOG_DIR = "tensorboard"
LOGS = ("none", "tensorboard")
N_IMAGES = 16  # test images (and prior draws) in each logged grid
PROJECTOR_POINTS = 1000  # test codes in the projector (the report's t-SNE map shows 1,000 by default)


def require_tensorboard() -> Any:
    """torch's ``SummaryWriter`` class, or a one-line error saying how to install what it needs."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("--log tensorboard needs the tensorboard package: pip install 'vaelab[tensorboard]'") from None
    return SummaryWriter


class TensorBoardLog:
    """One run's TensorBoard writer: :meth:`epoch` after each epoch, :meth:`measures` and :meth:`projector` once
    the run is evaluated, :meth:`close` at the end."""

    def __init__(self, log_dir: str | Path, test_images: np.ndarray, test_labels: np.ndarray, class_names: list[str],
                 seed: int, epochs: int, every: int = 5) -> None:
        self._writer_class = require_tensorboard()
        self._writer: Any = None  # made at the first write: a run refused before training leaves no log folder
        self.log_dir = Path(log_dir)
        self.images, self.labels = test_images[:N_IMAGES], np.asarray(test_labels[:N_IMAGES], dtype=np.int64)
        self.class_names, self.seed, self.epochs, self.every = class_names, seed, epochs, every

    @property
    def writer(self) -> Any:
        """torch's SummaryWriter on the log folder (created on first use)."""
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.log_dir))
        return self._writer

    def epoch(self, model, row: dict[str, Any]) -> None:
        """Log one epoch's row of the history; every ``every`` epochs and at the last, the image grids."""
        step = int(row["epoch"])
        for key, value in row.items():
            split, _, term = key.partition("_")
            if split in ("train", "test") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{split}/{term}", float(value), step)
        self.writer.add_scalar("time/epoch_seconds", float(row.get("seconds", 0.0)), step)
        if step == 1:
            self.writer.add_images("test images", to_tensor(self.images), step)
        if step % self.every == 0 or step == self.epochs:
            self.grids(model, step)
        self.writer.flush()

    @torch.no_grad()
    def grids(self, model, step: int) -> None:
        """The first test images' reconstructions and decoded prior draws (the same draws at every step)."""
        was_training = model.training
        model.eval()
        try:
            labels = torch.from_numpy(self.labels).to(model.device) if model.conditional else None
            x = to_tensor(self.images).to(model.device)
            self.writer.add_images("reconstructions", model.reconstruct(x, labels).float().cpu(), step)
            z = model.sample_prior(N_IMAGES, torch_generator(self.seed, "tensorboard-prior", model.config.latent))
            cycled = torch.arange(N_IMAGES, device=model.device) % len(self.class_names) if model.conditional else None
            self.writer.add_images("prior draws", model.decode_images(z.to(model.device), cycled).float().cpu(), step)
        finally:
            model.train(was_training)

    def measures(self, values: dict[str, Any], step: int) -> None:
        """The run's measures (the caller leaves out per-class and per-dimension details), as scalars
        ``measures/NAME`` at ``step`` (its last epoch)."""
        for name, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                self.writer.add_scalar(f"measures/{name}", float(value), step)
        self.writer.flush()

    def projector(self, codes: np.ndarray, labels: np.ndarray, images: np.ndarray, step: int) -> None:
        """The test codes (the first :data:`PROJECTOR_POINTS`) with their class names and images, for the
        projector: ``projector_config.pbtxt``, ``tensors.tsv``, ``metadata.tsv`` and ``sprite.png``."""
        n = min(PROJECTOR_POINTS, len(codes))
        names = [self.class_names[int(k)] for k in labels[:n]]
        self.writer.add_embedding(torch.as_tensor(np.asarray(codes[:n], dtype=np.float32)), metadata=names,
                                  label_img=to_tensor(images[:n]), global_step=step, tag="test codes")
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file (if anything was written)."""
        if self._writer is not None:
            self._writer.close()


def check_log(kind: str) -> None:
    """Refuse, in one line, a log that is not one of :data:`LOGS`."""
    if kind not in LOGS:
        raise ConfigError(f"unknown log {kind!r}: choose one of {', '.join(LOGS)}")


def open_log(kind: str, log_dir: str | Path, data, seed: int, epochs: int) -> TensorBoardLog | None:
    """The log a run asked for (``kind`` one of :data:`LOGS`) for data set ``data``, or None for ``none``."""
    check_log(kind)
    if kind == "none":
        return None
    return TensorBoardLog(log_dir, data.test_images, data.test_labels, data.class_names, seed, epochs)
