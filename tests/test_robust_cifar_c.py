"""`sdnet robust --cifar-c-dir`: a fake CIFAR-C folder (official layout) evaluated = a direct computation;
bad folders are one clear line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sdnet_cli.cli.app import main
from sdnet_cli.data.corruptions import corrupt
from sdnet_cli.data.digits import load_digits
from sdnet_cli.layers import csc_layers
from sdnet_cli.models.files import load_model_dir

CORRUPTIONS = ("gaussian_noise", "contrast")
N = 24


def trained_size(model_dir) -> int:
    """Image size the model was trained at (``metrics.image_size``; the session fixture trains at 16)."""
    return int(json.loads((Path(model_dir) / "config.json").read_text()).get("metrics", {}).get("image_size", 16))


@pytest.fixture(scope="module")
def fake_c(tmp_path_factory, digits_model_dir) -> tuple[Path, dict[str, np.ndarray], np.ndarray]:
    """A CIFAR-10-C-style folder built from 24 digits test images, severities stacked in blocks."""
    folder = tmp_path_factory.mktemp("cc") / "CIFAR-10-C"
    folder.mkdir()
    x, y = load_digits("test", trained_size(digits_model_dir))
    x, y = x[:N], y[:N]
    data = {c: np.concatenate([corrupt(x, c, s, seed=s) for s in range(1, 6)]) for c in CORRUPTIONS}
    labels = np.tile(y, 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    for c, arr in data.items():
        np.save(folder / f"{c}.npy", arr)
    return folder, data, labels


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out, out.err


@pytest.mark.slow
def test_fake_cifar_c_equals_direct_computation(digits_model_dir, fake_c, tmp_path, capsys) -> None:
    folder, data, labels = fake_c
    try:
        main(["robust", str(digits_model_dir), "--cifar-c-dir", str(folder.parent), "--corruptions",
              ",".join(CORRUPTIONS), "--lambdas", "0.1,0.8", "--output", str(tmp_path), "--json", "--no-plots",
              "--image-size", str(trained_size(digits_model_dir))])
    except SystemExit as e:
        assert e.code in (0, None)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["source"] == "cifar-c-files"
    model, config = load_model_dir(digits_model_dir)
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    checked = 0
    for r in report["results"]:
        if r["corruption"] == "clean" or r["mode"] != "sweep":
            continue
        block = slice((r["severity"] - 1) * N, r["severity"] * N)
        x = (torch.from_numpy(data[r["corruption"]][block]).permute(0, 3, 1, 2).float() / 255 - mean) / std
        csc_layers(model)[0].lmbd = r["lambda"]
        with torch.no_grad():
            pred = model(x).argmax(1).numpy()
        assert r["accuracy"] == pytest.approx(100.0 * (pred == labels[block]).mean())
        assert r["n"] == N
        checked += 1
    assert checked == len(CORRUPTIONS) * 5 * 2


def test_bad_cifar_c_folders_exit_2(digits_model_dir, fake_c, tmp_path, capsys) -> None:
    folder, data, labels = fake_c
    bad = tmp_path / "CIFAR-10-C"
    bad.mkdir()
    np.save(bad / "labels.npy", labels)
    base = ["robust", str(digits_model_dir), "--cifar-c-dir", str(bad), "--lambdas", "none", "--no-plots",
            "--output", str(tmp_path / "o")]
    cases = []
    code, _, err = run(base + ["--corruptions", "contrast"], capsys)  # missing .npy
    cases.append((code, err, "contrast.npy not found"))
    raw = (folder / "contrast.npy").read_bytes()
    (bad / "contrast.npy").write_bytes(raw[:-1000])  # truncated
    code, _, err = run(base + ["--corruptions", "contrast"], capsys)
    cases.append((code, err, "truncated"))
    np.save(bad / "contrast.npy", data["contrast"])
    np.save(bad / "labels.npy", labels[:-5])  # labels of the wrong length
    code, _, err = run(base + ["--corruptions", "contrast"], capsys)
    cases.append((code, err, "labels"))
    code, _, err = run(base + ["--corruptions", "fogg"], capsys)
    cases.append((code, err, "valid:"))
    code, _, err = run(base + ["--corruptions", "contrast", "--severities", "1-7"], capsys)
    cases.append((code, err, "1-5"))
    for code, err, needle in cases:
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and needle in err, err
