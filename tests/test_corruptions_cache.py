"""Generated CIFAR-C sets on disk: CIFAR-10-C layout, equal to on-the-fly generation, reused, made whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sdnet_cli.data.corruptions import cache, corrupt
from sdnet_cli.robust.conditions import condition_seed, generate_cached, iter_conditions


def _images(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8), rng.integers(0, 10, size=n)


def seed_of(name: str, severity: int) -> int:
    return condition_seed(3, name, severity)


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: spawned workers
def test_layout_and_blocks_equal_on_the_fly(tmp_path: Path, workers: int) -> None:
    x, y = _images()
    folder = cache.generate(tmp_path / "c", x, y, ["fog", "glass_blur"], seed_of, workers=workers)
    labels = np.load(folder / "labels.npy")
    assert labels.dtype == np.int64 and np.array_equal(labels, np.tile(y, 5))
    for name in ("fog", "glass_blur"):
        data = np.load(folder / f"{name}.npy")
        assert data.dtype == np.uint8 and data.shape == (30, 16, 16, 3)
        for s in range(1, 6):
            np.testing.assert_array_equal(data[(s - 1) * 6:s * 6], corrupt(x, name, s, seed_of(name, s)))
    assert sorted(p.name for p in folder.iterdir()) == [".lock", "fog.npy", "glass_blur.npy", "labels.npy"]


def test_reused_and_incomplete_files_remade(tmp_path: Path, monkeypatch) -> None:
    x, y = _images()
    folder = cache.generate(tmp_path / "c", x, y, ["fog"], seed_of, workers=1)
    made = np.load(folder / "fog.npy")

    def no_job(*args):
        raise AssertionError("a complete set must be reused, not generated again")

    monkeypatch.setattr(cache, "_job", no_job)
    cache.generate(folder, x, y, ["fog"], seed_of, workers=1)
    monkeypatch.undo()
    # a killed run leaves a .part (ignored) and a truncated file is remade, not read
    (folder / "snow.npy.part").write_bytes(b"partial")
    raw = (folder / "fog.npy").read_bytes()
    (folder / "fog.npy").write_bytes(raw[:len(raw) // 2])
    assert cache.missing_names(folder, ["fog", "snow"], 6, (16, 16, 3)) == ["fog", "snow"]
    cache.generate(folder, x, y, ["fog", "snow"], seed_of, workers=1)
    np.testing.assert_array_equal(np.load(folder / "fog.npy"), made)
    assert not list(folder.glob("*.part")) and (folder / "snow.npy").is_file()


def test_key_follows_images_seed_and_labels(tmp_path: Path) -> None:
    x, y = _images()
    base = cache.cache_folder(tmp_path, x, y, 0)
    x2 = x.copy()
    x2[0, 0, 0, 0] ^= 1
    assert len({base, cache.cache_folder(tmp_path, x2, y, 0), cache.cache_folder(tmp_path, x, y, 1),
                cache.cache_folder(tmp_path, x, (y + 1) % 10, 0)}) == 4


def test_conditions_from_the_cache_equal_generated(tmp_path: Path) -> None:
    x, y = _images()
    levels = {"gaussian_noise": (1, 5), "zoom_blur": (2,)}
    folder = generate_cached(tmp_path, levels, (x, y), seed=3, channels=1)
    assert np.load(folder / "zoom_blur.npy").shape == (30, 16, 16, 1)  # in the model's channel space
    fresh = list(iter_conditions(levels, clean=(x, y), seed=3, channels=1))
    cached = list(iter_conditions(levels, clean=(x, y), seed=3, channels=1, generated=folder))
    assert [(c.corruption, c.severity) for c in fresh] == [(c.corruption, c.severity) for c in cached]
    for a, b in zip(fresh, cached):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.slow
def test_robust_run_writes_then_reuses_the_cache(digits_model_dir, tmp_path: Path, monkeypatch) -> None:
    """`sdnet robust` on a whole generated test set: the set lands under --data-root, the next run reads it
    (no corruption job runs) and both report the accuracy of the on-the-fly images."""
    import json

    from typer.testing import CliRunner

    from sdnet_cli.cli.app import app
    from sdnet_cli.data.digits import load_digits
    from sdnet_cli.robust import runner as robust_runner
    from test_robust import direct_accuracy, trained_size
    from sdnet_cli.models.files import load_model_dir

    monkeypatch.setattr(robust_runner, "MIN_CACHED_IMAGES", 0)
    size = trained_size(digits_model_dir)
    args = ["robust", str(digits_model_dir), "--corruptions", "fog", "--severities", "2", "--lambdas", "0.1",
            "--data-root", str(tmp_path / "root"), "--image-size", str(size), "--no-plots", "--json"]

    def accuracy(out: str) -> float:
        res = CliRunner().invoke(app, args + ["--output", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout.strip().splitlines()[-1])
        return next(r["accuracy"] for r in report["results"] if r["corruption"] == "fog" and r["mode"] == "train")

    first = accuracy("a")
    files = sorted((tmp_path / "root" / "generated-c").glob("*/*.npy"))
    assert [f.name for f in files] == ["fog.npy", "labels.npy"]
    monkeypatch.setattr(cache, "_job", lambda *a: (_ for _ in ()).throw(AssertionError("regenerated")))
    assert accuracy("b") == first
    model, config = load_model_dir(digits_model_dir)
    x, y = load_digits("test", size)
    images = corrupt(x, "fog", 2, condition_seed(0, "fog", 2))
    assert first == pytest.approx(direct_accuracy(model, config, images, y, 0.1))
