"""The readers of the field's data files at their real size: how long a load takes and how much memory.

The real files (CelebA, DeepMind's dSprites and 3D Shapes) cannot be fetched everywhere, so this writes
**synthetic files of the real size and layout** into FOLDER (about 2.2 GB; skipped where already there):
- ``celeba/``: 202,599 178x218 JPEGs of drawn faces in ``img_align_celeba.zip``, with both text files in
  CelebA's layout and the official partition counts;
- ``dsprites-real/``: the 737,280-image grid rendered by vaelab, in dSprites' npz keys and dtypes;
- ``3dshapes/``: 480,000 flat-coloured 64x64 scenes, gzip-chunked, with 3D Shapes' data set names and values.
They are not CelebA's or DeepMind's data: only the costs of reading them carry over.

Then it loads each data set in a fresh process (the first CelebA load builds its cache in
``$XDG_CACHE_HOME``), and prints, side by side, each load's seconds and peak resident memory.

Run: ``.venv/bin/python bench/data_files.py FOLDER``
"""

from __future__ import annotations

import colorsys
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

LOAD = """
import json, resource, sys, time
from vaelab.data.registry import load_dataset
started = time.perf_counter()
data = load_dataset(sys.argv[1], data_dir=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - started, "train": len(data.train_images),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def write_celeba(folder: Path) -> None:
    from PIL import Image, ImageDraw, ImageFilter

    from vaelab.data.celeba import ATTRIBUTES

    folder.mkdir(parents=True, exist_ok=True)
    n, rng = 202_599, np.random.default_rng(0)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    table = np.where(rng.random((n, 40)) < 0.3, 1, -1)
    with open(folder / "list_attr_celeba.txt", "w") as out:
        out.write(f"{n}\n" + " ".join(ATTRIBUTES) + " \n")
        out.writelines(name + " " + " ".join(f"{v:2d}" for v in row) + "\n" for name, row in zip(names, table))
    partition = [0] * 162_770 + [1] * 19_867 + [2] * 19_962
    with open(folder / "list_eval_partition.txt", "w") as out:
        out.writelines(f"{name} {p}\n" for name, p in zip(names, partition))
    grain = np.asarray(Image.effect_noise((178, 218), 40).convert("RGB")).astype(np.int16) - 128
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("img_align_celeba/", b"")
        for name in names:
            image = Image.new("RGB", (178, 218), tuple(int(v) for v in rng.integers(0, 256, 3)))
            draw = ImageDraw.Draw(image)
            cx, cy = 89 + int(rng.integers(-8, 9)), 120 + int(rng.integers(-8, 9))
            rx, ry = 45 + int(rng.integers(-6, 7)), 60 + int(rng.integers(-6, 7))
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(int(v) for v in rng.integers(120, 256, 3)))
            for dx in (-18, 18):
                draw.ellipse((cx + dx - 6, cy - 19, cx + dx + 6, cy - 11), fill=(30, 30, 30))
            draw.arc((cx - 20, cy + 10, cx + 20, cy + 35), 0, 180, fill=(120, 20, 20), width=3)
            pixels = np.clip(np.asarray(image, np.int16) + grain // 4, 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).filter(ImageFilter.SMOOTH).save(buffer, format="JPEG", quality=90)
            archive.writestr("img_align_celeba/" + name, buffer.getvalue())


def write_dsprites(folder: Path) -> None:
    from vaelab.data import dsprites, dsprites_real

    folder.mkdir(parents=True, exist_ok=True)
    renderer, images, i = dsprites.Renderer(), np.empty((737_280, 64, 64), np.uint8), 0
    for shape in range(3):
        for scale in range(6):
            for orientation in range(40):
                block = renderer.all_positions(shape, scale, orientation)  # [y, x]; the file has y fastest
                images[i:i + 1024] = block.transpose(1, 0, 2, 3).reshape(1024, 64, 64) // 255
                i += 1024
    classes = np.concatenate([np.zeros((737_280, 1), np.int64), dsprites.grid_factors()], axis=1)
    with open(folder / dsprites_real.FILE.name, "wb") as out:
        np.savez_compressed(out, imgs=images, latents_classes=classes, latents_values=classes.astype(np.float64),
                            metadata=np.array([{"made by": "bench/data_files.py"}], dtype=object))


def write_3dshapes(folder: Path) -> None:
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    sizes, total = (10, 10, 10, 8, 4, 15), 480_000
    classes = np.stack(np.unravel_index(np.arange(total), sizes), axis=1)
    values = np.stack([classes[:, 0] / 10, classes[:, 1] / 10, classes[:, 2] / 10, 0.75 + classes[:, 3] / 14,
                       classes[:, 4].astype(float), -30 + classes[:, 5] * 60 / 14], axis=1)
    hue = np.array([colorsys.hsv_to_rgb(h / 10, 0.8, 0.9) for h in range(10)]) * 255
    rows, columns = np.mgrid[:64, :64]
    with h5py.File(folder / "3dshapes.h5", "w") as out:
        images = out.create_dataset("images", shape=(total, 64, 64, 3), dtype=np.uint8, chunks=(1000, 64, 64, 3),
                                    compression="gzip", compression_opts=4)
        out.create_dataset("labels", data=values)
        for start in range(0, total, 8000):
            c = classes[start:start + 8000]
            block = np.empty((len(c), 64, 64, 3), np.uint8)
            block[:, :40], block[:, 40:] = hue[c[:, 1]][:, None, None], hue[c[:, 0]][:, None, None]
            radius, centre = 8 + 2 * c[:, 3] + c[:, 4], 32 + c[:, 5] - 7
            inside = (columns[None] - centre[:, None, None]) ** 2 + (rows[None] - 40) ** 2 <= radius[:, None, None] ** 2
            block[inside] = np.broadcast_to(hue[c[:, 2]][:, None, None], block.shape)[inside]
            images[start:start + len(c)] = block


def load(name: str, folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", LOAD, name, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(root: Path) -> None:
    import torch

    writers = {"celeba": write_celeba, "dsprites-real": write_dsprites, "3dshapes": write_3dshapes}
    for folder, write in writers.items():
        if not (root / folder).is_dir():
            started = time.perf_counter()
            write(root / folder)
            print(f"wrote synthetic {folder} in {time.perf_counter() - started:.0f} s")
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}; synthetic files of the real size and layout")
    print(f"{'data set':18} {'load':>10} {'again':>10} {'peak GB':>8} {'train images':>13}")
    for name, folder in (("celeba", "celeba"), ("celeba:20000", "celeba"), ("dsprites-real", "dsprites-real"),
                         ("3dshapes", "3dshapes"), ("3dshapes:50000", "3dshapes"), ("3dshapes:480000", "3dshapes")):
        first, again = load(name, root / folder), load(name, root / folder)
        print(f"{name:18} {first['seconds']:9.1f}s {again['seconds']:9.1f}s {max(first['peak_gb'], again['peak_gb']):8.1f} "
              f"{first['train']:13,}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
