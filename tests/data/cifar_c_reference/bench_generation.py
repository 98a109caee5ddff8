"""Wall time of generating all 19 corruptions × 5 severities of a 10,000-image 32×32 set, cold and cached.

Usage: ``python tests/data/cifar_c_reference/bench_generation.py CACHE_ROOT [N] [WORKERS]`` — the same call
``sdnet robust --corruptions all --severities all`` makes for a generated run (``generate_cached``): cold
into an empty ``CACHE_ROOT``, then again (the files are checked and reused), then reading all 95 blocks
as a run does. Images: photo crops of ``make_reference.photo_crops`` (1,000 crops repeated).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_reference import ROOT, photo_crops  # noqa: E402

sys.path.insert(0, str(ROOT))
from sdnet_cli.data.corruptions import ALL, cache  # noqa: E402
from sdnet_cli.robust.conditions import condition_seed  # noqa: E402


def main(root: str, n: int = 10_000, workers: int | None = None) -> None:
    crops = photo_crops(1000)
    images = np.concatenate([crops] * (n // 1000 + 1))[:n]
    labels = np.arange(n) % 10
    shutil.rmtree(Path(root) / "generated-c", ignore_errors=True)
    folder = cache.cache_folder(root, images, labels, 0)
    seed_of = lambda c, s: condition_seed(0, c, s)  # noqa: E731
    done: dict[str, float] = {}
    t0 = time.perf_counter()
    cache.generate(folder, images, labels, list(ALL), seed_of, workers,
                   on_done=lambda c, s: done.__setitem__(f"{c}/{s}", time.perf_counter() - t0))
    cold = time.perf_counter() - t0
    t1 = time.perf_counter()
    cache.generate(folder, images, labels, list(ALL), seed_of, workers)
    check = time.perf_counter() - t1
    t2 = time.perf_counter()
    for c in ALL:
        for s in range(1, 6):
            cache.load_block(folder, c, s)
    read = time.perf_counter() - t2
    print(f"n={n} workers={workers or cache.default_workers()}: cold {cold:.1f} s, cached check {check:.2f} s, "
          f"reading all 95 blocks {read:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1], *[int(v) for v in sys.argv[2:4]])
