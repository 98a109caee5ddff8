"""CIFAR files for tests, in the distributed format: pickled dicts of NumPy arrays and lists.

- :func:`py2_batch_pickle` writes a batch byte for byte the way the official files (Python 2 ``cPickle``,
  protocol 2, NumPy 1.x) are laid out: ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``, the pixels as a Python 2 ``str`` (``BINSTRING``), keys as ``SHORT_BINSTRING``.
- :func:`write_tree` writes a whole ``cifar-10-batches-py`` / ``cifar-100-python`` folder with plain
  ``pickle.dump`` at a chosen protocol (or the Python 2 layout).
- :func:`evil_pickle` is a pickle that, read by plain ``pickle.load``, calls ``fn(*args)``.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _s(text: str | bytes) -> bytes:
    """A Python 2 ``str`` opcode: SHORT_BINSTRING (< 256 bytes) or BINSTRING."""
    raw = text.encode("latin1") if isinstance(text, str) else text
    return (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<i", len(raw))) + raw


def _int(v: int) -> bytes:
    return b"K" + bytes([v]) if 0 <= v < 256 else (b"M" + struct.pack("<H", v) if 0 <= v < 65536
                                                   else b"J" + struct.pack("<i", v))


def _py2_uint8_array(a: np.ndarray) -> bytes:
    assert a.dtype == np.uint8 and a.ndim == 2
    dtype = (b"cnumpy\ndtype\n" + _s("u1") + _int(0) + _int(1) + b"\x87R"
             + b"(" + _int(3) + _s("|") + b"NNN" + _int(-1) + _int(-1) + _int(0) + b"tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _int(0) + b"\x85" + _s("b")
            + b"\x87R" + b"(" + _int(1) + _int(a.shape[0]) + _int(a.shape[1]) + b"\x86" + dtype + b"\x89"
            + _s(a.tobytes()) + b"tb")


def py2_batch_pickle(entry: dict[str, Any]) -> bytes:
    """``entry`` (str keys; uint8 2-D arrays, lists of ints or strs, ints, strs) as Python 2 cPickle writes it."""
    out = [b"\x80\x02}("]
    for key, value in entry.items():
        out.append(_s(key))
        if isinstance(value, np.ndarray):
            out.append(_py2_uint8_array(value))
        elif isinstance(value, list):
            out.append(b"](" + b"".join(_int(v) if isinstance(v, int) else _s(v) for v in value) + b"e")
        elif isinstance(value, int):
            out.append(_int(value))
        else:
            out.append(_s(value))
    out.append(b"u.")
    return b"".join(out)


def _batch(rng: np.random.Generator, n: int, num_classes: int, key: str, label: str) -> dict:
    return {"batch_label": label, key: [int(v) for v in rng.integers(0, num_classes, n)],
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"img{i}.png" for i in range(n)]}


def write_tree(root: Path, name: str = "cifar10", protocol: int | str = 4, n: int = 6, seed: int = 0) -> dict:
    """A CIFAR folder under ``root``; ``protocol`` a pickle protocol or ``"py2"``. Returns the expected
    ``{split: (uint8 (N, 32, 32, 3), int64 (N,))}``, computed from the arrays written (torchvision's reshape)."""
    rng = np.random.default_rng(seed)
    dump = py2_batch_pickle if protocol == "py2" else (lambda e: pickle.dumps(e, protocol=int(protocol)))
    if name == "cifar10":
        folder, key, classes = root / "cifar-10-batches-py", "labels", 10
        files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        meta = ("batches.meta", {"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": n,
                                 "num_vis": 3072})
    else:
        folder, key, classes = root / "cifar-100-python", "fine_labels", 100
        files = {"train": ["train"], "test": ["test"]}
        meta = ("meta", {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": ["x"] * 20})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / meta[0]).write_bytes(dump(meta[1]))
    expected = {}
    for split, names in files.items():
        batches = [_batch(rng, n, classes, key, f"{split} {f}") for f in names]
        for f, b in zip(names, batches):
            if name == "cifar100":
                b["coarse_labels"] = [v // 5 for v in b[key]]
            (folder / f).write_bytes(dump(b))
        data = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        expected[split] = (data, np.concatenate([np.asarray(b[key], np.int64) for b in batches]))
    return expected


class _Reduce:
    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return self.fn, self.args


def evil_pickle(fn: Callable[..., Any], args: tuple, inside: dict | None = None, protocol: int = 2) -> bytes:
    """A pickle whose loading calls ``fn(*args)`` — alone, or as the value of ``'evil'`` inside ``inside``."""
    obj: Any = _Reduce(fn, args) if inside is None else {**inside, "evil": _Reduce(fn, args)}
    return pickle.dumps(obj, protocol=protocol)


def tar_gz(folder: Path, extra: dict[str, bytes] | None = None, symlink: tuple[str, str] | None = None) -> bytes:
    """A ``.tar.gz`` of ``folder`` (under its own name), plus ``extra`` members and a ``symlink`` (name, target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink[0])
            info.type, info.linkname = tarfile.SYMTYPE, symlink[1]
            tar.addfile(info)
    return buf.getvalue()
