"""Images per second of each corruption: sdnet's generator against the reference ``make_cifar_c.py``.

Usage (outside the package, like ``make_reference.py``; needs the same libraries)::

    python tests/data/cifar_c_reference/bench_reference.py MAKE_CIFAR_C FROST_DIR [N_OURS] [N_REF] [ROUNDS]

Per corruption and round, ours corrupts ``N_OURS`` photo crops at each severity in one call (as a
generation job does) and the reference runs its loop body image by image on ``N_REF`` crops:
``np.uint8(corruption(convert_img(img)))`` with its ``convert_img`` (``ToTensor`` then ``ToPILImage``), from the
uint8 array as the script's loop does; the two alternate, so both see the same machine load. Prints one
line per corruption: median images/s of each over the rounds and their ratio (ours / reference), and the
time each would take for all 5 severities of 10,000 images in one process.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_reference import ROOT, load_reference, photo_crops  # noqa: E402

sys.path.insert(0, str(ROOT))
from sdnet_cli.data.corruptions import ALL, corrupt  # noqa: E402


def ours_rate(images: np.ndarray, name: str) -> float:
    t = time.perf_counter()
    for s in range(1, 6):
        corrupt(images, name, s, seed=s)
    return 5 * len(images) / (time.perf_counter() - t)


def reference_rate(ns: dict, images: np.ndarray, name: str) -> float:
    import torchvision.transforms as trn
    convert_img = trn.Compose([trn.ToTensor(), trn.ToPILImage()])  # the reference script's
    fn = ns[name]
    t = time.perf_counter()
    for s in range(1, 6):
        for img in images:
            np.uint8(fn(convert_img(img), s))
    return 5 * len(images) / (time.perf_counter() - t)


def main(ref_path: str, frost_dir: str, n_ours: int = 2000, n_ref: int = 100, rounds: int = 3) -> None:
    ns = load_reference(ref_path)
    crops = photo_crops(200)
    images = np.concatenate([crops] * (int(n_ours) // 200 + 1))[:int(n_ours)]
    few = crops[:int(n_ref)]
    os.chdir(frost_dir)
    print(f"{'corruption':18s} {'ours img/s':>11s} {'reference img/s':>16s} {'ratio':>7s} {'ours 50k s':>11s} "
          f"{'ref 50k s':>10s}")
    total = [0.0, 0.0]
    for name in ALL:
        ours, ref = [], []
        for _ in range(int(rounds)):
            ours.append(ours_rate(images, name))
            ref.append(reference_rate(ns, few, name))
        o, r = float(np.median(ours)), float(np.median(ref))
        total[0] += 50_000 / o
        total[1] += 50_000 / r
        print(f"{name:18s} {o:11.0f} {r:16.0f} {o / r:7.2f} {50_000 / o:11.1f} {50_000 / r:10.1f}", flush=True)
    print(f"{'all 19':18s} {'':11s} {'':16s} {total[1] / total[0]:7.2f} {total[0]:11.1f} {total[1]:10.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:3], *[int(v) for v in sys.argv[3:6]])
