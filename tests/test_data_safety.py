"""Dataset files from outside (issue 23 items 6 and 7): no pickle runs code, every array is checked first.

- CIFAR-10/100 batches are read with a restricted unpickler: a crafted pickle in any of the files (that
  would write a file under plain ``pickle.load``) stops ``sdnet train`` with exit 2 and one line, and the file
  is not written. Well-formed trees — the Python 2 layout of the official files and every protocol of
  ``pickle.dump`` — load to what torchvision's own reader gives.
- CIFAR-C ``.npy``: wrong image size, channels first, object-dtype labels, labels beyond the model's classes
  stop ``sdnet robust`` with exit 2 and one line before any work (no output folder).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cifar_files import evil_pickle, py2_batch_pickle, write_tree
from cli_helpers import run_cli
from sdnet_cli.data.cifar import load_cifar
from sdnet_cli.data.datasets import CIFAR_MEAN, CIFAR_STD
from sdnet_cli.data.safe_pickle import ALLOWED, loads_pickle
from sdnet_cli.errors import UsageError
from sdnet_cli.models.files import ModelConfig, save_model

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchvision_reads(root: Path, name: str, split: str, monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    """The reference: torchvision's CIFAR reader (plain pickle: trusted files only), file md5s not checked."""
    import torchvision.datasets.cifar as tvc

    monkeypatch.setattr(tvc, "check_integrity", lambda *a, **k: True)
    ds = (tvc.CIFAR10 if name == "cifar10" else tvc.CIFAR100)(str(root), train=split == "train", download=False)
    return ds.data, np.asarray(ds.targets)


@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_well_formed_trees_load_like_torchvision(tmp_path, name, protocol, monkeypatch):
    expected = write_tree(tmp_path, name, protocol, n=7)
    for split in ("train", "test"):
        x, y = load_cifar(name, split, tmp_path, download=False)
        ref_x, ref_y = _torchvision_reads(tmp_path, name, split, monkeypatch)
        assert x.dtype == np.uint8 and x.shape == (7 * (5 if name == "cifar10" and split == "train" else 1), 32, 32, 3)
        np.testing.assert_array_equal(x, ref_x)
        np.testing.assert_array_equal(y, ref_y)
        np.testing.assert_array_equal(x, expected[split][0])
        assert y.dtype == np.int64


def test_python2_layout_is_what_plain_pickle_reads():
    """The hand-written Python 2 bytes decode (plain pickle, latin1) to the arrays they were made from."""
    a = np.random.default_rng(0).integers(0, 256, (3, 3072), dtype=np.uint8)
    raw = py2_batch_pickle({"data": a, "labels": [1, 2, 3]})
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"T\x00$\x00\x00" in raw  # a py2 str of 9216 bytes
    plain = pickle.loads(raw, encoding="latin1")
    ours = loads_pickle(raw, "t")
    np.testing.assert_array_equal(plain["data"], a)
    np.testing.assert_array_equal(ours["data"], a)
    assert ours["labels"] == [1, 2, 3]


def _crafted(marker: Path) -> list[tuple[str, bytes]]:
    """Payloads that each create ``marker`` when read by plain ``pickle.load``."""
    valid = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}
    return [
        ("os.system", evil_pickle(os.system, (f"touch {marker}",))),
        ("builtins.exec", evil_pickle(exec, (f"open({str(marker)!r}, 'w').close()",), protocol=4)),
        ("inside a valid batch", evil_pickle(os.system, (f"touch {marker}",), inside=valid, protocol=5)),
        ("pathlib.Path.touch", evil_pickle(Path.touch, (marker,))),
    ]


def test_crafted_payloads_would_run_under_plain_pickle(tmp_path):
    """The payloads are real: plain ``pickle.loads`` creates the marker with every one of them."""
    for what, payload in _crafted(tmp_path / "m"):
        pickle.loads(payload, encoding="latin1")
        assert (tmp_path / "m").exists(), what
        (tmp_path / "m").unlink()


def _train_args(name: str, root: Path, out: Path) -> list[str]:
    return ["train", "--dataset", name, "--data-root", str(root), "--epochs", "1", "--batch-size", "4",
            "--set", "train.limit_batches=1", "--set", "train.threads=1", "--output", str(out)]


def _crafted_tree(root: Path, name: str, target: str, payload: bytes) -> None:
    write_tree(root, name, "py2", n=4)
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    (folder / target).write_bytes(payload)


@pytest.mark.parametrize("name, target", [("cifar10", "batches.meta"), ("cifar10", "data_batch_3"),
                                          ("cifar10", "test_batch"), ("cifar100", "meta"), ("cifar100", "train")])
def test_crafted_pickle_never_runs_through_train(tmp_path, capsys, name, target):
    """``sdnet train`` (in-process, the real entry point): exit 2, one line naming the file and the refused
    callable, no marker, no run folder — for every payload in every file."""
    marker = tmp_path / "PWNED"
    for k, (what, payload) in enumerate(_crafted(marker)):
        _crafted_tree(tmp_path / f"data{k}", name, target, payload)
        code, _, err = run_cli(capsys, *_train_args(name, tmp_path / f"data{k}", tmp_path / f"run{k}"))
        lines = err.strip().splitlines()
        assert code == 2, (what, err)
        assert len(lines) == 1 and target in lines[0] and "refusing to unpickle" in lines[0], (what, lines)
        assert not marker.exists(), f"{what}: the pickle ran"
        assert not (tmp_path / f"run{k}").exists()


@pytest.mark.slow
def test_crafted_pickle_never_runs_in_a_child_process(tmp_path):
    """The issue's reproduction as a user runs it: ``python -m sdnet_cli train`` with a crafted batches.meta."""
    marker = tmp_path / "PWNED"
    _crafted_tree(tmp_path / "data", "cifar10", "batches.meta", _crafted(marker)[0][1])
    proc = subprocess.run([sys.executable, "-m", "sdnet_cli", *_train_args("cifar10", tmp_path / "data",
                                                                           tmp_path / "run")],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "refusing to unpickle posix.system" in proc.stderr
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("module, name", [("posix", "system"), ("builtins", "eval"), ("builtins", "getattr"),
                                          ("numpy", "load"), ("numpy.testing._private.utils", "runstring"),
                                          ("torch", "load"), ("copyreg", "_reconstructor"), ("subprocess", "Popen")])
def test_unpickler_refuses_every_other_global(module, name):
    raw = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"U\x01x\x85R."
    with pytest.raises(UsageError, match=rf"refusing to unpickle {module}\.{name}"):
        loads_pickle(raw, "f")
    assert (module, name) not in ALLOWED


def test_codecs_encode_only_latin1():
    ok = pickle.dumps(b"\xff\x00", protocol=2)  # Python 3 bytes at protocol 2: _codecs.encode(str, 'latin1')
    assert loads_pickle(ok, "f") == b"\xff\x00"
    bad = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x09\x00\x00\x00zlib_codec\x86R."
    with pytest.raises(UsageError, match="could not be read"):
        loads_pickle(bad, "f")


@pytest.mark.parametrize("entry, words", [
    ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, ["float32", "uint8 (N, 3072)"]),
    ({"data": np.zeros((2, 3, 32, 32), np.uint8), "labels": [0, 1]}, ["(2, 3, 32, 32)"]),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, ["label 10", "0 … 9"]),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1, 2]}, ["2 images but 3 labels"]),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, None]}, ["integer class indices"]),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [[0], [1, 2]]}, ["1-D"]),
    ({"data": np.zeros((2, 3072), np.uint8)}, ["no 'labels'"]),
    ([1, 2, 3], ["holds a list", "not a CIFAR batch"]),
])
def test_bad_batches_are_one_line(tmp_path, entry, words):
    write_tree(tmp_path, "cifar10", 4, n=2)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(entry, protocol=4))
    with pytest.raises(UsageError) as e:
        load_cifar("cifar10", "test", tmp_path, download=False)
    msg = str(e.value)
    assert "test_batch" in msg and all(w in msg for w in words) and "\n" not in msg, msg


def test_bad_meta_is_one_line(tmp_path):
    write_tree(tmp_path, "cifar10", 4, n=2)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a"] * 3}))
    with pytest.raises(UsageError, match=r"batches\.meta: expected a dict whose 'label_names' lists 10 class names"):
        load_cifar("cifar10", "train", tmp_path, download=False)


# -- CIFAR-C .npy files (item 7) ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Untrained sdnet18 model folders: CIFAR-10 at 32×32 and digits at 8×8 (10 classes each)."""
    from sdnet_cli.data.datasets import DIGITS_MEAN, DIGITS_STD

    args = {"in_chans": 3, "lmbd": 0.1, "n_steps": 2, "mu": 0.0, "non_negative": True, "expansion": 1}
    root = tmp_path_factory.mktemp("cc_models")
    torch.manual_seed(0)
    cifar = ModelConfig("sdnet18", 10, "cifar", args, "cifar10", list(CIFAR_MEAN), list(CIFAR_STD), {"image_size": 32})
    digits = ModelConfig("sdnet18", 10, "cifar", args, "digits", list(DIGITS_MEAN), list(DIGITS_STD), {"image_size": 8})
    return {"cifar10": save_model(cifar.build().eval(), root / "c10", cifar),
            "digits": save_model(digits.build().eval(), root / "dg", digits)}


def _cc_folder(tmp: Path, images: np.ndarray | None = None, labels: np.ndarray | None = None) -> Path:
    folder = tmp / "CIFAR-10-C"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "labels.npy", np.tile(np.arange(10), 5).astype(np.uint8) if labels is None else labels,
            allow_pickle=labels is not None and labels.dtype == object)
    np.save(folder / "gaussian_noise.npy",
            rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8) if images is None else images)
    return folder


def _robust(model: Path, folder: Path, out: Path, *extra: str) -> list[str]:
    return ["robust", str(model), "--cifar-c-dir", str(folder), "--corruptions", "gaussian_noise", "--severities",
            "1", "--lambdas", "none", "--no-plots", "--output", str(out), *extra]


def _evil_labels(marker: Path) -> np.ndarray:
    from cifar_files import _Reduce

    arr = np.empty(50, dtype=object)
    arr[:] = [int(v) for v in np.tile(np.arange(10), 5)]
    arr[3] = _Reduce(os.system, (f"touch {marker}",))
    return arr


u8 = np.uint8
CASES = [
    ("16x16 images", "cifar10", lambda m: dict(images=np.zeros((50, 16, 16, 3), u8)), ["16x16", "32x32"]),
    ("channels first", "cifar10", lambda m: dict(images=np.zeros((50, 3, 32, 32), u8)),
     ["channels", "(50, 3, 32, 32)"]),
    ("not square", "cifar10", lambda m: dict(images=np.zeros((50, 32, 30, 3), u8)), ["32x30"]),
    ("uint16 images", "cifar10", lambda m: dict(images=np.zeros((50, 32, 32, 3), np.uint16)), ["uint16", "uint8"]),
    ("3-D images", "cifar10", lambda m: dict(images=np.zeros((50, 32, 96), u8)), ["(50, 32, 96)"]),
    ("object labels", "cifar10", lambda m: dict(labels=_evil_labels(m)), ["labels.npy", "object"]),
    ("float labels", "cifar10", lambda m: dict(labels=np.tile(np.arange(10.0), 5)), ["labels.npy", "float64"]),
    ("labels beyond classes", "cifar10", lambda m: dict(labels=np.arange(50).astype(np.int16)),
     ["label 10", "0 … 9"]),
    ("labels beyond classes, digits model", "digits", lambda m: dict(images=np.zeros((50, 8, 8, 3), u8),
                                                                     labels=np.arange(50)), ["label 10"]),
    ("object labels, digits model", "digits", lambda m: dict(images=np.zeros((50, 8, 8, 3), u8),
                                                             labels=_evil_labels(m)), ["object"]),
    ("16x16 images, digits model trained at 8x8", "digits", lambda m: dict(images=np.zeros((50, 16, 16, 3), u8)),
     ["16x16", "8x8"]),
]


@pytest.mark.parametrize("what, model, make, words", CASES, ids=[c[0] for c in CASES])
def test_bad_cifar_c_files_exit_2_before_work(models, tmp_path, capsys, what, model, make, words):
    marker = tmp_path / "PWNED"
    folder = _cc_folder(tmp_path, **make(marker))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *_robust(models[model], folder, out))
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and all(w in lines[0] for w in words), lines
    assert not out.exists() and not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CIFAR-10-C"]  # nothing written beside


def test_good_cifar_c_folder_passes_the_checks(tmp_path):
    from sdnet_cli.data.cifar_c import load_cifar_c, validate_cifar_c_dir

    images = np.random.default_rng(1).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    folder = _cc_folder(tmp_path, images=images)
    assert validate_cifar_c_dir(tmp_path, ["gaussian_noise"], "cifar10") == folder
    x, y = load_cifar_c(folder, "gaussian_noise", 2, num_classes=10, image_size=32)
    np.testing.assert_array_equal(x, images[10:20])
    assert y.tolist() == list(range(10)) and y.dtype == np.int64
    with pytest.raises(UsageError, match="16x16"):  # the model's size, when it is not the dataset's, is passed in
        validate_cifar_c_dir(folder, ["gaussian_noise"], "cifar10", image_size=16)


def test_oversized_pickle_is_refused_unread(tmp_path):
    from sdnet_cli.data.safe_pickle import load_pickle

    (tmp_path / "big").write_bytes(pickle.dumps(list(range(1000))))
    assert load_pickle(tmp_path / "big") == list(range(1000))
    with pytest.raises(UsageError, match="more than any dataset file"):
        load_pickle(tmp_path / "big", max_bytes=100)
