"""The readers of the field's data files at their real size: how long a load takes and how much memory.

The real files (CelebA, DeepMind's dSprites and 3D Shapes) cannot be fetched everywhere, so this writes
**synthetic files of the real size and layout** into FOLDER (about 2.2 GB; skipped where already there):
- ``celeba/``: 202,599 178x218 JPEGs of drawn faces in ``img_align_celeba.zip``, with both text files in
  CelebA's layout and the official partition counts; 13 of the 40 attributes are drawn (:data:`DRAWN`: a
  smile, glasses, hair colour, a hat…), the rest are random labels that nothing in the image shows;
- ``dsprites-real/``: the 737,280-image grid rendered by vaelab, in dSprites' npz keys and dtypes;
- ``3dshapes/``: 480,000 flat-coloured 64x64 scenes, gzip-chunked, with 3D Shapes' data set names and values.
They are not CelebA's or DeepMind's data: only the costs of reading them carry over.

Then it loads each data set in a fresh process (the first CelebA load builds its cache in
``$XDG_CACHE_HOME``), and prints, side by side, each load's seconds and peak resident memory.

Run: ``.venv/bin/python bench/data_files.py FOLDER`` (``--faces N FOLDER`` writes only a CelebA of N faces, for
a study of the attribute measures: ``vaelab study run … -d celeba --data-dir FOLDER``).
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


# The attributes the synthetic faces draw (the others are drawn at random and not shown: a probe should read
# the first from the codes and find only chance, 0.5, in the rest)
DRAWN = ("Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Blond_Hair", "Black_Hair", "Bald", "Wearing_Hat",
         "Mustache", "Pale_Skin", "Wearing_Lipstick", "Male", "Rosy_Cheeks", "Bangs")


def draw_face(rng: np.random.Generator, has: dict[str, bool]):
    """One 178x218 face whose drawn attributes (:data:`DRAWN`) show: a smile, glasses, hair colour, a hat…"""
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.new("RGB", (178, 218), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    cx, cy = 89 + int(rng.integers(-6, 7)), 120 + int(rng.integers(-6, 7))
    rx, ry = (52 if has["Male"] else 42) + int(rng.integers(-3, 4)), 60 + int(rng.integers(-4, 5))
    skin = (235, 215, 200) if has["Pale_Skin"] else tuple(int(v) for v in rng.integers((120, 80, 60), (200, 160, 130)))
    if not has["Bald"]:
        hair = (230, 200, 90) if has["Blond_Hair"] else (25, 20, 20) if has["Black_Hair"] else (110, 70, 40)
        draw.ellipse((cx - rx - 8, cy - ry - 14, cx + rx + 8, cy + 10), fill=hair)
    draw.rounded_rectangle((cx - rx, cy - ry, cx + rx, cy + ry), radius=18 if has["Male"] else 40, fill=skin)
    if has["Bangs"] and not has["Bald"]:
        draw.rectangle((cx - rx + 4, cy - ry, cx + rx - 4, cy - ry + 24), fill=hair)
    if has["Wearing_Hat"]:
        draw.rectangle((cx - rx - 12, cy - ry - 6, cx + rx + 12, cy - ry + 6), fill=(40, 40, 120))
        draw.rectangle((cx - rx + 6, cy - ry - 40, cx + rx - 6, cy - ry), fill=(40, 40, 120))
    for dx in (-18, 18):
        draw.ellipse((cx + dx - 6, cy - 19, cx + dx + 6, cy - 11), fill=(30, 30, 30))
        if has["Eyeglasses"]:
            draw.rectangle((cx + dx - 13, cy - 25, cx + dx + 13, cy - 5), outline=(10, 10, 10), width=3)
        if has["Rosy_Cheeks"]:
            draw.ellipse((cx + 2 * dx - 9, cy + 4, cx + 2 * dx + 9, cy + 18), fill=(225, 120, 130))
    if has["Eyeglasses"]:
        draw.line((cx - 5, cy - 15, cx + 5, cy - 15), fill=(10, 10, 10), width=3)
    lips = (200, 20, 40) if has["Wearing_Lipstick"] else (120, 50, 50)
    if has["Mouth_Slightly_Open"]:
        draw.ellipse((cx - 12, cy + 22, cx + 12, cy + 36), fill=(40, 10, 10), outline=lips, width=3)
    elif has["Smiling"]:
        draw.arc((cx - 22, cy + 8, cx + 22, cy + 36), 20, 160, fill=lips, width=4)
    else:
        draw.line((cx - 16, cy + 28, cx + 16, cy + 28), fill=lips, width=4)
    if has["Mustache"]:
        draw.rectangle((cx - 18, cy + 14, cx + 18, cy + 20), fill=(50, 35, 25))
    return image.filter(ImageFilter.SMOOTH)


def write_celeba(folder: Path, n: int = 202_599) -> None:
    """A CelebA of ``n`` synthetic faces in its files' layout (the official partition's shares)."""
    from PIL import Image

    from vaelab.data.celeba import ATTRIBUTES

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    table = np.where(rng.random((n, 40)) < 0.35, 1, -1)
    with open(folder / "list_attr_celeba.txt", "w") as out:
        out.write(f"{n}\n" + " ".join(ATTRIBUTES) + " \n")
        out.writelines(name + " " + " ".join(f"{v:2d}" for v in row) + "\n" for name, row in zip(names, table))
    n_train, n_valid = round(n * 162_770 / 202_599), round(n * 19_867 / 202_599)
    partition = [0] * n_train + [1] * n_valid + [2] * (n - n_train - n_valid)
    with open(folder / "list_eval_partition.txt", "w") as out:
        out.writelines(f"{name} {p}\n" for name, p in zip(names, partition))
    grain = np.asarray(Image.effect_noise((178, 218), 40).convert("RGB")).astype(np.int16) - 128
    with zipfile.ZipFile(folder / "img_align_celeba.zip", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("img_align_celeba/", b"")
        for name, row in zip(names, table):
            has = {attribute: bool(row[ATTRIBUTES.index(attribute)] == 1) for attribute in DRAWN}
            pixels = np.clip(np.asarray(draw_face(rng, has), np.int16) + grain // 4, 0, 255).astype(np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
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
    if len(sys.argv) == 4 and sys.argv[1] == "--faces":
        write_celeba(Path(sys.argv[3]), int(sys.argv[2]))
    elif len(sys.argv) == 2:
        main(Path(sys.argv[1]))
    else:
        sys.exit(__doc__)
