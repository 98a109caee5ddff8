"""Make ``reference.npz``: outputs of the reference CIFAR-10-C generator on 32×32 photo crops.

Usage (outside the package; the reference code is read from a fetched copy and never committed)::

    python tests/data/cifar_c_reference/make_reference.py MAKE_CIFAR_C FROST_DIR ROBUST_INFERENCE OUT.npz

``make_cifar_c.py`` is ``ImageNet-C/create_c/make_cifar_c.py`` of hendrycks/robustness and ``frost_dir`` the
folder with its ``frost1.png`` … ``frost6.jpg`` (same folder in that repository); ``ROBUST_INFERENCE`` is
``robust_inference.py`` of the official SDNet code (Delay-Xili/SDNet), whose noise functions and
``build_noise_transforms`` are taken out of it with ``ast`` and run alone. Needs Wand + ImageMagick,
scikit-image, OpenCV, SciPy. Only the distortion functions of the script are executed (its CIFAR loop is
cut off); shims make it run on current libraries without changing what it computes: ``multichannel=True``
→ ``channel_axis=-1``, ``np.float_`` → ``float64``, ``np.fromstring`` → ``np.frombuffer``,
``scipy.ndimage.interpolation`` → ``scipy.ndimage``.

Written arrays:
- ``images`` uint8 (N, 32, 32, 3): crops of scikit-image's sample photographs (public domain / CC0);
- ``replay/<name>`` uint8 (5, N, 32, 32, 3): the reference's output with its ``np.random`` draws replaced by
  :class:`tests.cifar_c_replay.Replay` seeded with ``replay_seed(ALL.index(name), severity, image)``
  (impulse noise: skimage's own ``rng`` set to that stream's generator); stored as ``(out − image) mod 256``;
- ``sdnet_levels/<name>`` float64: the levels of the official ``build_noise_transforms`` (sdnet-noise protocol);
- ``sdnet/<name>`` uint8 (L, 2, 32, 32, 3): the official noise function at each level on the first 2 images,
  draws from ``Replay([28, noise index, level, image])``, stored as ``(out − image) mod 256``;
- ``stats/<name>`` float64 (5, K, S): the statistics of :func:`tests.cifar_c_replay.change_statistics` of the
  reference with its own random numbers, ``np.random.seed(k)`` for k = 0 … K−1 (impulse: skimage ``rng=k``).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from sdnet_cli.data.corruptions import ALL  # noqa: E402
from tests.cifar_c_replay import Replay, change_statistics, replay_seed  # noqa: E402

RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur", "snow",
          "frost", "fog", "spatter", "elastic_transform")
SEEDS = 24


class _NumpyShim(types.ModuleType):
    """``numpy`` for the reference script, with ``random`` swappable and removed aliases restored."""

    def __init__(self) -> None:
        super().__init__("numpy")
        self.random = np.random
        self.float_ = np.float64
        self.fromstring = lambda b, dtype: np.frombuffer(b, dtype)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(np, name)


def load_reference(path: str) -> dict:
    """The distortion functions of ``make_cifar_c.py`` (everything before its CIFAR loop), with the shims."""
    import scipy.ndimage
    import skimage.filters
    sys.modules.setdefault("scipy.ndimage.interpolation", scipy.ndimage)
    source = Path(path).read_text()
    source = source[:source.index("import collections")]
    ns: dict = {"__name__": "make_cifar_c"}
    exec(compile(source, path, "exec"), ns)  # noqa: S102 - the fetched reference, run only here
    ns["np"] = _NumpyShim()

    def gaussian(image, sigma=1, multichannel=None, **kw):  # noqa: ANN001, ANN202
        if multichannel:
            kw["channel_axis"] = -1
        return skimage.filters.gaussian(image, sigma=sigma, **kw)

    ns["gaussian"] = gaussian
    return ns


def photo_crops(n: int) -> np.ndarray:
    """``n`` 32×32 RGB crops of scikit-image's sample photographs, each photo shrunk so a crop shows an object."""
    import skimage.data as data
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.hubble_deep_field()]
    rng = np.random.default_rng(2019)
    out = []
    for k in range(n):
        img = Image.fromarray(photos[k % len(photos)][..., :3])
        side = int(rng.integers(64, 160))
        img = img.resize((side, side * img.height // img.width), Image.BICUBIC)
        arr = np.asarray(img)
        r, c = int(rng.integers(0, arr.shape[0] - 32)), int(rng.integers(0, arr.shape[1] - 32))
        out.append(arr[r:r + 32, c:c + 32])
    return np.stack(out).astype(np.uint8)


def run(ns: dict, name: str, image: np.ndarray, severity: int, draws, sk_rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
    """One reference output (uint8) with ``draws`` as ``np.random`` and ``sk_rng`` as skimage's ``rng``."""
    import skimage as sk
    ns["np"].random = draws
    ns["sk"] = types.SimpleNamespace(util=types.SimpleNamespace(
        random_noise=lambda x, **kw: sk.util.random_noise(x, rng=sk_rng, **kw)), color=sk.color)
    out = np.uint8(ns[name](Image.fromarray(image), severity))
    assert out.shape == image.shape and out.dtype == np.uint8, (name, out.shape, out.dtype)
    return out


SDNET_NOISES = {"gaussian_noise": "gaussian", "shot_noise": "shot", "speckle_noise": "speckle", "impulse_noise": "impulse"}


def load_official_noise(path: str) -> dict:
    """The official noise functions and ``build_noise_transforms`` of ``robust_inference.py`` (nothing else)."""
    import ast
    tree = ast.parse(Path(path).read_text())
    keep = {"gaussian_noise", "shot_noise", "speckle_noise", "impulse_noise", "build_noise_transforms"}
    body = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in keep]
    assert {f.name for f in body} == keep, "robust_inference.py no longer has the expected functions"
    ns: dict = {"np": _NumpyShim()}
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), ns)  # noqa: S102
    return ns


def sdnet_arrays(path: str, images: np.ndarray) -> dict[str, np.ndarray]:
    """Levels and replayed outputs of the official SDNet noise protocol (see the module doc)."""
    import skimage as sk
    ns = load_official_noise(path)
    out: dict[str, np.ndarray] = {}
    for ni, (name, kind) in enumerate(SDNET_NOISES.items()):
        levels, fn = ns["build_noise_transforms"](kind)
        out[f"sdnet_levels/{name}"] = np.asarray(levels, dtype=np.float64)
        rep = np.empty((len(levels), 2) + images.shape[1:], np.uint8)
        for li, c in enumerate(levels):
            for i in range(2):
                draws = Replay([28, ni, li + 1, i])
                ns["np"].random = draws
                ns["sk"] = types.SimpleNamespace(util=types.SimpleNamespace(
                    random_noise=lambda x, **kw: sk.util.random_noise(x, rng=draws.base, **kw)))
                y = fn(np.array(images[i]), c).astype(np.uint8)
                rep[li, i] = (y.astype(np.int16) - images[i]) % 256
        out[f"sdnet/{name}"] = rep
    return out


def main(ref_path: str, frost_dir: str, sdnet_path: str, out_path: str, n: int = 10) -> None:
    ns = load_reference(ref_path)
    images = photo_crops(n)
    arrays: dict[str, np.ndarray] = {"images": images}
    arrays.update(sdnet_arrays(sdnet_path, images))
    out_path = str(Path(out_path).resolve())
    os.chdir(frost_dir)  # the reference reads './frost1.png' …
    for ci, name in enumerate(ALL):
        rep = np.empty((5,) + images.shape, np.uint8)
        for s in range(1, 6):
            for i, img in enumerate(images):
                draws = Replay(replay_seed(ci, s, i))
                out = run(ns, name, img, s, draws, draws.base)
                rep[s - 1, i] = (out.astype(np.int16) - img) % 256
        arrays[f"replay/{name}"] = rep
        if name in RANDOM:
            stats = []
            for s in range(1, 6):
                per_seed = []
                for k in range(SEEDS):
                    np.random.seed(k)
                    sk_rng = np.random.default_rng(k)
                    outs = np.stack([run(ns, name, img, s, np.random, sk_rng) for img in images])
                    per_seed.append(change_statistics(images, outs))
                stats.append(per_seed)
            arrays[f"stats/{name}"] = np.asarray(stats, dtype=np.float64)
        print(name, flush=True)
    np.savez_compressed(out_path, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:5])
