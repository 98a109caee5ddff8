"""Bad inputs at the boundary (issue 13 item 5): every row exits 2 with one error line and writes nothing.

Each row builds, inside its own folder ``tmp`` (the command's working directory), whatever bad input it
needs — a mutated copy of a small model directory, weights with NaN or int32 tensors, a fake CIFAR with bad
labels, a file where a folder belongs — and returns the command line. The command runs in-process through
``sdnet_cli.cli.app.main``. Checked for every row:

- exit code 2;
- exactly one non-empty line on stderr, ``error: …``, naming what is wrong (the row's ``words``: the flag,
  the key, the tensor or the file);
- nothing written: every file and folder under ``tmp`` (and the shared model directory) is unchanged —
  same names, sizes and modification times, no new entries (no run dir, lock, temp file or cache).

The classes covered: config.json (types, ranges, a list instead of an object, bad ``model_args``), weights
(NaN, inf, int32, damaged), labels (≥ num_classes, negative, float), every numeric flag of every command with
nan / inf / negative / zero where invalid, and every file argument missing / a folder instead of a file / a
file instead of a folder / garbage content.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file

import numpy as np

from sdnet_cli.data.datasets import CIFAR_MEAN, CIFAR_STD, DIGITS_MEAN, DIGITS_STD
from sdnet_cli.models.files import ModelConfig, save_model

Make = Callable[[Path, Path], list[str]]


@dataclass(frozen=True)
class Row:
    """One bad input: ``make(tmp, model_dir) -> argv``; ``words`` must all appear in the error line."""

    id: str
    make: Make
    words: tuple[str, ...]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained) sdnet18 digits 8×8 model directory written by sdnet's own ``save_model``; beside it,
    ``model_cifar10`` (the same for CIFAR-10 at 32×32, for the CIFAR-10-C rows)."""
    args = {"in_chans": 3, "lmbd": 0.1, "n_steps": 2, "mu": 0.0, "non_negative": True, "expansion": 1}
    root = tmp_path_factory.mktemp("bad_inputs")
    cifar = ModelConfig("sdnet18", 10, "cifar", args, "cifar10", list(CIFAR_MEAN), list(CIFAR_STD), {"image_size": 32})
    torch.manual_seed(0)
    save_model(cifar.build().eval(), root / "model_cifar10", cifar)
    cfg = ModelConfig("sdnet18", 10, "cifar", args, "digits", list(DIGITS_MEAN), list(DIGITS_STD),
                      {"image_size": 8, "top1": 10.0})
    return save_model(cfg.build().eval(), root / "model", cfg)


# -- builders of bad inputs -------------------------------------------------------------------------
def _copy_model(tmp: Path, model: Path, name: str = "m") -> Path:
    dst = tmp / name
    dst.mkdir()
    os.link(model / "model.safetensors", dst / "model.safetensors")  # weights untouched: a hard link is enough
    shutil.copy2(model / "config.json", dst / "config.json")
    return dst


def _config_json(mutate: Callable[[dict], object]) -> Callable[[Path, Path], Path]:
    """A copy of the model whose config.json is ``mutate(config)`` (or the dict mutated in place)."""

    def make(tmp: Path, model: Path) -> Path:
        dst = _copy_model(tmp, model)
        d = json.loads((dst / "config.json").read_text())
        out = mutate(d)
        (dst / "config.json").write_text(json.dumps(d if out is None else out))
        return dst

    return make


def _raw_config(text: bytes) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, model: Path) -> Path:
        dst = _copy_model(tmp, model)
        (dst / "config.json").write_bytes(text)
        return dst

    return make


def _weights(mutate: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path, Path], Path]:
    """A copy of the model whose model.safetensors holds ``mutate(tensors)`` (written without sdnet's checks)."""

    def make(tmp: Path, model: Path) -> Path:
        dst = tmp / "m"
        dst.mkdir()
        shutil.copy2(model / "config.json", dst / "config.json")
        tensors = load_file(str(model / "model.safetensors"))
        mutate(tensors)
        save_file(tensors, str(dst / "model.safetensors"))
        return dst

    return make


def _raw_weights(data: bytes) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, model: Path) -> Path:
        dst = tmp / "m"
        dst.mkdir()
        shutil.copy2(model / "config.json", dst / "config.json")
        (dst / "model.safetensors").write_bytes(data)
        return dst

    return make


def _set(key: str, value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def mutate(t: dict[str, torch.Tensor]) -> None:
        t[key] = t[key].clone()
        t[key].view(-1)[0] = value

    return mutate


def _cast(key: str, dtype: torch.dtype) -> Callable[[dict[str, torch.Tensor]], None]:
    def mutate(t: dict[str, torch.Tensor]) -> None:
        t[key] = t[key].to(dtype)

    return mutate


def _fake_cifar(tmp: Path, labels: Callable[[list], list] | None = None, name: str = "data") -> Path:
    """A tiny CIFAR-10 in torchvision's layout (20 train, 10 test images); ``labels`` rewrites every batch's."""
    from train_helpers import write_fake_cifar

    root = tmp / name
    write_fake_cifar(root, "cifar10", n_train=20, n_test=10)
    if labels is not None:
        for f in sorted((root / "cifar-10-batches-py").glob("*_batch*")):
            batch = pickle.loads(f.read_bytes())
            batch["labels"] = labels(batch["labels"])
            f.write_bytes(pickle.dumps(batch))
    return root


def _cifar_c(labels: object, images: object = None, name: str = "cc") -> Callable[[Path, Path], list[str]]:
    """``sdnet robust`` of the CIFAR-10 model on a fake CIFAR-10 (10 test images) and a CIFAR-10-C folder whose
    ``labels.npy`` / ``gaussian_noise.npy`` are the given arrays (``bytes``: raw garbage)."""

    def make(tmp: Path, model: Path) -> list[str]:
        folder = tmp / name
        folder.mkdir()
        noise = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8) if images is None else images
        for file, value in (("labels.npy", labels), ("gaussian_noise.npy", noise)):
            if isinstance(value, bytes):
                (folder / file).write_bytes(value)
            else:
                np.save(folder / file, value)
        return ["robust", str(model.parent / "model_cifar10"), "--data-root", str(_fake_cifar(tmp)), "--cifar-c-dir",
                str(folder), "--corruptions", "gaussian_noise", "--severities", "1", "--lambdas", "none", "--no-plots"]

    return make


def _file(tmp: Path, name: str = "afile.txt", data: bytes = b"not a folder\n") -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


def _dir(tmp: Path, name: str = "adir") -> Path:
    (tmp / name).mkdir()
    return tmp / name


def _no_weights(tmp: Path, model: Path, folder: bool = False) -> Path:
    dst = tmp / "m"
    dst.mkdir()
    shutil.copy2(model / "config.json", dst / "config.json")
    if folder:
        (dst / "model.safetensors").mkdir()
    return dst


def _config_folder(tmp: Path, model: Path) -> Path:
    dst = tmp / "m"
    dst.mkdir()
    os.link(model / "model.safetensors", dst / "model.safetensors")
    (dst / "config.json").mkdir()
    (dst / "config.json" / "x").write_text("{}")
    return dst


def _bad_run(tmp: Path) -> Path:
    run = tmp / "oldrun"
    (run / "state").mkdir(parents=True)
    (run / "config.yaml").write_bytes(b"model: [unclosed\n\x00\xff")
    return run


def _finished_run(tmp: Path, model: Path) -> Path:
    """A run directory as ``sdnet train`` leaves it (config.yaml, best/, last/, state/, metrics): the files a
    failed ``--force`` or ``--resume`` must leave untouched."""
    from sdnet_cli.config import resolve_config

    run = tmp / "done"
    run.mkdir()
    for sub in ("best", "last"):
        _copy_model(tmp, model, f"done/{sub}")
    (run / "state").mkdir()
    (run / "state" / "state-00000001.json").write_text("{}")
    cfg = resolve_config(None, {"train.output": str(run)}, ["train.epochs=1"])
    (run / "config.yaml").write_text(cfg.to_yaml())
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val_top1": 10.0}\n')
    return run


def train(*args: str) -> Make:
    """``sdnet train`` on digits (1 epoch, 1 batch, 1 thread) into ``tmp/run`` plus ``args``."""
    return lambda tmp, model: ["train", "--output", str(tmp / "run"), "--set", "train.threads=1",
                               "--set", "train.limit_batches=1", "--epochs", "1", *args]


def on_model(command: str, *args: str, model_from: Callable[[Path, Path], Path] | None = None) -> Make:
    """``sdnet COMMAND MODEL args`` on the shared model (or on ``model_from(tmp, model)``)."""
    return lambda tmp, model: [command, str(model_from(tmp, model) if model_from else model), *args]


def export_of(model_from: Callable[[Path, Path], Path]) -> Make:
    return lambda tmp, model: ["export", str(model_from(tmp, model)), "--output", str(tmp / "exported")]


# -- the table --------------------------------------------------------------------------------------
TRAIN_FLAGS = [
    Row("train --lr inf", train("--lr", "inf"), ("optim.lr", "inf")),
    Row("train --lr nan", train("--lr", "nan"), ("optim.lr", "nan")),
    Row("train --lr 0", train("--lr", "0"), ("optim.lr",)),
    Row("train --lr -0.1", train("--lr", "-0.1"), ("optim.lr",)),
    Row("train --epochs 0", train("--epochs", "0"), ("train.epochs",)),
    Row("train --epochs -3", train("--epochs", "-3"), ("train.epochs",)),
    Row("train --batch-size 0", train("--batch-size", "0"), ("train.batch_size",)),
    Row("train --batch-size -8", train("--batch-size", "-8"), ("train.batch_size",)),
    Row("train --workers -1", train("--workers", "-1"), ("data.workers",)),
    Row("train --seed -1", train("--seed", "-1"), ("train.seed",)),
    Row("train --device gpu", train("--device", "gpu"), ("train.device", "gpu")),
    Row("train --amp on cpu", train("--amp", "--device", "cpu"), ("amp",)),
    Row("train --dataset mnist", train("--dataset", "mnist"), ("mnist",)),
    Row("train --model sdnet19", train("--model", "sdnet19"), ("sdnet19",)),
]
SET_KEYS = [  # every numeric config key with a value out of its range
    ("model.lmbd", "-1"), ("model.lmbd", "nan"), ("model.lmbd", "inf"), ("model.mu", "-0.5"), ("model.mu", "nan"),
    ("model.n_steps", "0"), ("model.n_steps", "-2"), ("model.expansion", "0"), ("model.width", "0"),
    ("data.image_size", "3"), ("data.image_size", "0"), ("data.image_size", "-5"), ("data.in_chans", "2"),
    ("data.in_chans", "0"), ("data.val_split", "1"), ("data.val_split", "-0.1"), ("data.val_split", "nan"),
    ("data.workers", "-2"),
    ("optim.grad_clip", "-1"), ("optim.grad_clip", "nan"), ("optim.weight_decay", "-1"),
    ("optim.weight_decay", "inf"), ("optim.momentum", "1"), ("optim.momentum", "-0.1"), ("optim.momentum", "nan"),
    ("optim.gamma", "0"), ("optim.gamma", "nan"), ("optim.warmup_epochs", "-1"), ("optim.warmup_epochs", "inf"),
    ("optim.label_smoothing", "1"), ("optim.label_smoothing", "-0.1"), ("optim.milestones", "5,-1"),
    ("optim.lr", "-inf"),
    ("train.eval_batch_size", "0"), ("train.limit_batches", "-1"), ("train.threads", "-1"),
    ("train.checkpoint_every", "-1"), ("train.step_size_every", "-1"), ("train.seed", "4294967296"),
]
SET_ROWS = [Row(f"train --set {k}={v}", train("--set", f"{k}={v}"), (k,)) for k, v in SET_KEYS] + [
    Row("train --set optim.name=adam", train("--set", "optim.name=adam"), ("optim.name", "adam")),
    Row("train --set optim.schedule=linear", train("--set", "optim.schedule=linear"), ("optim.schedule",)),
    Row("train --set train.amp_dtype=fp8", train("--set", "train.amp_dtype=fp8"), ("train.amp_dtype",)),
    Row("train step schedule without milestones", train("--set", "optim.schedule=step"), ("optim.milestones",)),
    Row("train in_chans=1 on cifar10", train("--dataset", "cifar10", "--set", "data.in_chans=1"), ("in_chans",)),
    Row("train cifar10 image_size 16", train("--dataset", "cifar10", "--set", "data.image_size=16"),
        ("data.image_size",)),
]


def _yaml(text: bytes, name: str = "c.yaml") -> Make:
    def make(tmp: Path, model: Path) -> list[str]:
        return [*train()(tmp, model), "--config", str(_file(tmp, name, text))]

    return make


TRAIN_FILES = [
    Row("train --config folder", lambda t, m: [*train()(t, m), "--config", str(_dir(t, "cfgdir"))], ("cfgdir",)),
    Row("train --config missing", lambda t, m: [*train()(t, m), "--config", str(t / "nope.yaml")], ("nope.yaml",)),
    Row("train --config binary", _yaml(bytes(range(256)) * 4, "bin.yaml"), ("bin.yaml",)),
    Row("train --config bad yaml", _yaml(b"model: {name: sdnet18\n", "bad.yaml"), ("bad.yaml",)),
    Row("train --config a list", _yaml(b"- model\n- train\n", "list.yaml"), ("list.yaml",)),
    Row("train --config lmbd .nan", _yaml(b"model:\n  lmbd: .nan\n", "nan.yaml"), ("model.lmbd",)),
    Row("train --config epochs 2.5", _yaml(b"train:\n  epochs: 2.5\n", "e.yaml"), ("train.epochs",)),
    Row("train --output is a file", lambda t, m: [*train()(t, m), "--output", str(_file(t))], ("afile.txt",)),
    Row("train --output inside a file", lambda t, m: [*train()(t, m), "--output", str(_file(t) / "run")],
        ("afile.txt",)),
    Row("train --data-root is a file", lambda t, m: [*train("--dataset", "cifar10")(t, m), "--data-root",
                                                     str(_file(t))], ("afile.txt",)),
    Row("train cifar10 missing, no download", lambda t, m: [*train("--dataset", "cifar10", "--no-download")(t, m),
                                                            "--data-root", str(_dir(t, "empty"))], ("cifar10",)),
    Row("train labels >= num_classes", lambda t, m: [*train("--dataset", "cifar10", "--no-download")(t, m),
                                                     "--data-root", str(_fake_cifar(t, lambda ls: [10] + ls[1:]))],
        ("label 10",)),
    Row("train negative labels", lambda t, m: [*train("--dataset", "cifar10", "--no-download")(t, m),
                                               "--data-root", str(_fake_cifar(t, lambda ls: ls[:-1] + [-1]))],
        ("label -1",)),
    Row("train float labels", lambda t, m: [*train("--dataset", "cifar10", "--no-download")(t, m), "--data-root",
                                            str(_fake_cifar(t, lambda ls: [x + 0.5 for x in ls]))], ("float",)),
    Row("train --resume not a run", lambda t, m: ["train", "--resume", "--output", str(_dir(t, "notrun"))],
        ("notrun",)),
    Row("train --resume output is a file", lambda t, m: ["train", "--resume", "--output", str(_file(t))],
        ("afile.txt",)),
]

CONFIG_JSON = [  # config.json mutations, read by eval (export rows below reuse some)
    ("num_classes '10'", _config_json(lambda d: d.update(num_classes="10")), ("num_classes",)),
    ("num_classes -1", _config_json(lambda d: d.update(num_classes=-1)), ("num_classes",)),
    ("num_classes 0", _config_json(lambda d: d.update(num_classes=0)), ("num_classes",)),
    ("num_classes true", _config_json(lambda d: d.update(num_classes=True)), ("num_classes",)),
    ("num_classes 2.5", _config_json(lambda d: d.update(num_classes=2.5)), ("num_classes",)),
    ("a list", _config_json(lambda d: [d]), ("list",)),
    ("a string", _config_json(lambda d: "sdnet18"), ("config.json",)),
    ("no architecture", _config_json(lambda d: d.pop("architecture")), ("architecture",)),
    ("architecture unknown", _config_json(lambda d: d.update(architecture="sdnet99")), ("sdnet99",)),
    ("architecture 7", _config_json(lambda d: d.update(architecture=7)), ("architecture",)),
    ("stem_type bogus", _config_json(lambda d: d.update(stem_type="bogus")), ("stem_type",)),
    ("model_args a list", _config_json(lambda d: d.update(model_args=[1, 2])), ("model_args",)),
    ("model_args unknown key", _config_json(lambda d: d["model_args"].update(depth=50)), ("depth",)),
    ("model_args lmbd -1", _config_json(lambda d: d["model_args"].update(lmbd=-1)), ("lmbd",)),
    ("model_args lmbd 'x'", _config_json(lambda d: d["model_args"].update(lmbd="x")), ("lmbd",)),
    ("model_args n_steps 0", _config_json(lambda d: d["model_args"].update(n_steps=0)), ("n_steps",)),
    ("model_args n_steps 1.5", _config_json(lambda d: d["model_args"].update(n_steps=1.5)), ("n_steps",)),
    ("model_args in_chans 0", _config_json(lambda d: d["model_args"].update(in_chans=0)), ("in_chans",)),
    ("std [0,0,0]", _config_json(lambda d: d.update(std=[0, 0, 0])), ("std",)),
    ("std negative", _config_json(lambda d: d.update(std=[0.3, -0.3, 0.3])), ("std",)),
    ("mean NaN", _config_json(lambda d: d.update(mean=[float("nan")] * 3)), ("mean",)),
    ("std 2 values", _config_json(lambda d: d.update(std=[0.3, 0.3])), ("std",)),
    ("metrics a list", _config_json(lambda d: d.update(metrics=[1])), ("metrics",)),
    ("invalid JSON", _raw_config(b'{"architecture": "sdnet18", '), ("config.json",)),
    ("binary", _raw_config(bytes(range(256))), ("config.json",)),
    ("empty", _raw_config(b""), ("config.json",)),
]
WEIGHTS = [
    ("NaN", _weights(_set("linear.weight", float("nan"))), ("linear.weight",)),
    ("inf", _weights(_set("layer1.0.conv1.weight", float("inf"))), ("layer1.0.conv1.weight",)),
    ("NaN step_size", _weights(_set("layer0.0.step_size", float("nan"))), ("layer0.0.step_size",)),
    ("int32", _weights(_cast("linear.weight", torch.int32)), ("linear.weight",)),
    ("float running_mean as int64", _weights(_cast("layer0.1.running_mean", torch.int64)),
     ("layer0.1.running_mean",)),
    ("num_batches_tracked float", _weights(_cast("layer0.1.num_batches_tracked", torch.float32)),
     ("num_batches_tracked",)),
    ("missing tensor", _weights(lambda t: t.pop("linear.bias")), ("linear.bias",)),
    ("wrong shape", _weights(lambda t: t.update({"linear.bias": torch.zeros(3)})), ("linear.bias",)),
    ("garbage file", _raw_weights(b"\x00garbage" * 100), ("model.safetensors",)),
    ("empty file", _raw_weights(b""), ("model.safetensors",)),
]
MODEL_FILES = (
    [Row(f"eval config.json {name}", on_model("eval", model_from=f), words) for name, f, words in CONFIG_JSON]
    + [Row(f"eval weights {name}", on_model("eval", model_from=f), words) for name, f, words in WEIGHTS]
    + [Row(f"export config.json {name}", export_of(f), words) for name, f, words in CONFIG_JSON[:2] + CONFIG_JSON[5:6]
       + CONFIG_JSON[12:13] + CONFIG_JSON[18:19]]
    + [Row(f"export weights {name}", export_of(f), words) for name, f, words in WEIGHTS[:2] + WEIGHTS[3:4]]
    + [Row(f"visualize weights {name}", on_model("visualize", "--what", "dictionary", model_from=f), words)
       for name, f, words in WEIGHTS[:1]]
    + [Row(f"robust config.json {name}", on_model("robust", "--max-images", "20", model_from=f), words)
       for name, f, words in CONFIG_JSON[18:19]]
)

MODEL_ARG = [
    Row("eval model missing", lambda t, m: ["eval", str(t / "nothing_here")], ("nothing_here",)),
    Row("eval model is a file", lambda t, m: ["eval", str(_file(t, "model.bin"))], ("model.bin",)),
    Row("eval model folder without model", lambda t, m: ["eval", str(_dir(t, "emptydir"))], ("emptydir",)),
    Row("eval model.safetensors missing", lambda t, m: ["eval", str(_no_weights(t, m))], ("model.safetensors",)),
    Row("eval model.safetensors is a folder", lambda t, m: ["eval", str(_no_weights(t, m, folder=True))],
        ("model.safetensors",)),
    Row("eval config.json is a folder", lambda t, m: ["eval", str(_config_folder(t, m))], ("config.json",)),
    Row("eval --data-root missing, no download", lambda t, m: ["eval", str(m), "--dataset", "cifar10", "--no-download",
                                                               "--data-root", str(t / "nodata")], ("nodata",)),
    Row("export .pth.tar is a folder", lambda t, m: ["export", str(_dir(t, "ck.pth.tar")), "--arch", "sdnet18",
                                                     "--num-classes", "10", "--output", str(t / "x")], ("ck.pth.tar",)),
    Row("train --force bad n_steps keeps the old run", lambda t, m: [
        "train", "--force", "--output", str(_finished_run(t, m)), "--set", "model.n_steps=0"], ("model.n_steps",)),
    Row("train --force missing dataset keeps the old run", lambda t, m: [
        "train", "--force", "--output", str(_finished_run(t, m)), "--dataset", "cifar10", "--no-download",
        "--data-root", str(_dir(t, "empty"))], ("cifar10",)),
    Row("train --force bad labels keeps the old run", lambda t, m: [
        "train", "--force", "--output", str(_finished_run(t, m)), "--dataset", "cifar10", "--no-download",
        "--data-root", str(_fake_cifar(t, lambda ls: [10] * len(ls)))], ("label 10",)),
    Row("train --resume --lr nan", lambda t, m: ["train", "--resume", "--output", str(_finished_run(t, m)), "--lr",
                                                 "nan"], ("optim.lr",)),
    Row("train --resume garbage config.yaml", lambda t, m: ["train", "--resume", "--output", str(_bad_run(t))],
        ("config.yaml",)),
    Row("export model missing", lambda t, m: ["export", str(t / "nothing_here"), "--output", str(t / "x")],
        ("nothing_here",)),
    Row("export garbage .pth.tar", lambda t, m: ["export", str(_file(t, "model_best.pth.tar", b"garbage")),
                                                 "--arch", "sdnet18", "--num-classes", "10", "--output",
                                                 str(t / "x")], ("model_best.pth.tar",)),
    Row("visualize model missing", lambda t, m: ["visualize", str(t / "nothing_here")], ("nothing_here",)),
    Row("robust model missing", lambda t, m: ["robust", str(t / "nothing_here")], ("nothing_here",)),
]

EVAL_FLAGS = [
    Row("eval --image-size -5", on_model("eval", "--image-size", "-5"), ("image-size",)),
    Row("eval --image-size 0", on_model("eval", "--image-size", "0"), ("image-size",)),
    Row("eval --image-size 3", on_model("eval", "--image-size", "3"), ("image-size",)),
    Row("eval --image-size nan", on_model("eval", "--image-size", "nan"), ("image-size",)),
    Row("eval --lambda nan", on_model("eval", "--lambda", "nan"), ("lambda",)),
    Row("eval --lambda inf", on_model("eval", "--lambda", "inf"), ("lambda",)),
    Row("eval --lambda -1", on_model("eval", "--lambda", "-1"), ("lambda",)),
    Row("eval --batch-size 0", on_model("eval", "--batch-size", "0"), ("batch-size",)),
    Row("eval --batch-size -1", on_model("eval", "--batch-size", "-1"), ("batch-size",)),
    Row("eval --workers -1", on_model("eval", "--workers", "-1"), ("workers",)),
    Row("eval --lambda-layers some", on_model("eval", "--lambda-layers", "some"), ("lambda-layers",)),
    Row("eval --device gpu", on_model("eval", "--device", "gpu"), ("device",)),
    Row("eval --dataset mnist", on_model("eval", "--dataset", "mnist"), ("mnist",)),
    Row("eval --data-root is a file", lambda t, m: ["eval", str(m), "--dataset", "cifar10", "--data-root",
                                                    str(_file(t))], ("afile.txt",)),
    Row("eval cifar10 labels >= num_classes", lambda t, m: ["eval", str(m), "--dataset", "cifar10", "--no-download",
                                                            "--data-root", str(_fake_cifar(t, lambda ls: [12] * len(ls)))],
        ("label 12",)),
]

VIZ_FLAGS = [
    Row("visualize --num-images 0", on_model("visualize", "--num-images", "0"), ("num-images",)),
    Row("visualize --num-images -1", on_model("visualize", "--num-images", "-1"), ("num-images",)),
    Row("visualize --max-steps 0", on_model("visualize", "--max-steps", "0"), ("max-steps",)),
    Row("visualize --opt-steps 0", on_model("visualize", "--opt-steps", "0"), ("opt-steps",)),
    Row("visualize --lambdas nan", on_model("visualize", "--lambdas", "0,nan"), ("lambdas",)),
    Row("visualize --lambdas -1", on_model("visualize", "--lambdas", "-1,0.1"), ("lambdas",)),
    Row("visualize --lambdas inf", on_model("visualize", "--lambdas", "inf"), ("lambdas",)),
    Row("visualize --image-size 0", on_model("visualize", "--image-size", "0"), ("image-size",)),
    Row("visualize --image-size -5", on_model("visualize", "--image-size", "-5"), ("image-size",)),
    Row("visualize --threads -1", on_model("visualize", "--threads", "-1"), ("threads",)),
    Row("visualize --what bogus", on_model("visualize", "--what", "bogus"), ("bogus",)),
    Row("visualize --decode bogus", on_model("visualize", "--decode", "bogus"), ("decode",)),
    Row("visualize --output is a file", lambda t, m: ["visualize", str(m), "--output", str(_file(t))],
        ("afile.txt",)),
]

ROBUST_FLAGS = [
    Row("robust --lambdas nan", on_model("robust", "--lambdas", "nan"), ("lambdas",)),
    Row("robust --lambdas 0.1,nan", on_model("robust", "--lambdas", "0.1,nan"), ("lambdas",)),
    Row("robust --lambdas -1", on_model("robust", "--lambdas", "-1,0.1"), ("lambdas",)),
    Row("robust --lambdas inf", on_model("robust", "--lambdas", "0.1,inf"), ("lambdas",)),
    Row("robust --timeout 0", on_model("robust", "--cifar-c-dir", "cc", "--download", "--timeout", "0"), ("--timeout",)),
    Row("robust --timeout nan", on_model("robust", "--cifar-c-dir", "cc", "--download", "--timeout", "nan"), ("--timeout",)),
    Row("robust --lambdas 0.1:nan:0.1", on_model("robust", "--lambdas", "0.1:nan:0.1"), ("lambdas",)),
    Row("robust --lambdas 0.1:1:0", on_model("robust", "--lambdas", "0.1:1:0"), ("lambdas",)),
    Row("robust --eps nan", on_model("robust", "--attack", "pgd-linf", "--eps", "nan"), ("eps",)),
    Row("robust --eps -1", on_model("robust", "--attack", "pgd-linf", "--eps", "-1"), ("eps",)),
    Row("robust --eps inf", on_model("robust", "--attack", "pgd-linf", "--eps", "inf"), ("eps",)),
    Row("robust --steps 0", on_model("robust", "--attack", "pgd-linf", "--steps", "0"), ("steps",)),
    Row("robust --step-size nan", on_model("robust", "--attack", "pgd-linf", "--step-size", "nan"), ("step-size",)),
    Row("robust --step-size -1", on_model("robust", "--attack", "pgd-linf", "--step-size", "-1"), ("step-size",)),
    Row("robust --attack bogus", on_model("robust", "--attack", "bogus"), ("bogus",)),
    Row("robust --severities 0", on_model("robust", "--severities", "0"), ("severit",)),
    Row("robust --severities 6", on_model("robust", "--severities", "6"), ("severit",)),
    Row("robust --corruptions bogus", on_model("robust", "--corruptions", "bogus"), ("bogus",)),
    Row("robust --batch-size 0", on_model("robust", "--batch-size", "0"), ("batch-size",)),
    Row("robust --max-images 0", on_model("robust", "--max-images", "0"), ("max-images",)),
    Row("robust --max-images -5", on_model("robust", "--max-images", "-5"), ("max-images",)),
    Row("robust --calib-images 0", on_model("robust", "--auto-lambda", "--calib-images", "0"), ("calib-images",)),
    Row("robust --recalibrate-bn -1", on_model("robust", "--recalibrate-bn", "-1"), ("recalibrate-bn",)),
    Row("robust --image-size 0", on_model("robust", "--image-size", "0"), ("image-size",)),
    Row("robust --image-size -5", on_model("robust", "--image-size", "-5"), ("image-size",)),
    Row("robust --cifar-c-dir is a file", lambda t, m: ["robust", str(m), "--cifar-c-dir", str(_file(t))],
        ("afile.txt",)),
    Row("robust --cifar-c-dir missing", lambda t, m: ["robust", str(m), "--cifar-c-dir", str(t / "noccdir")],
        ("noccdir",)),
    Row("robust --lambda-fit missing", lambda t, m: ["robust", str(m), "--lambda-fit", str(t / "nofit.json")],
        ("nofit.json",)),
    Row("robust --lambda-fit garbage", lambda t, m: ["robust", str(m), "--lambda-fit",
                                                     str(_file(t, "fit.json", b"{not json"))], ("fit.json",)),
    Row("robust --lambda-fit a folder", lambda t, m: ["robust", str(m), "--lambda-fit", str(_dir(t, "fitdir"))],
        ("fitdir",)),
    Row("robust --output is a file", lambda t, m: ["robust", str(m), "--output", str(_file(t))], ("afile.txt",)),
    Row("robust --eps 8/0", on_model("robust", "--attack", "pgd-linf", "--eps", "8/0"), ("eps",)),
    Row("robust --lambda-fit NaN slope", lambda t, m: ["robust", str(m), "--lambda-fit", str(_file(
        t, "fit.json", b'{"slope": NaN, "intercept": 0.1, "probe_lmbd": 0.1, "lmbd_min": 0, "lmbd_max": 2}'))],
        ("fit.json",)),
    Row("robust CIFAR-C float labels", _cifar_c(np.tile(np.arange(10), 5) + 0.5), ("labels.npy", "float")),
    Row("robust CIFAR-C labels >= num_classes", _cifar_c(np.tile(np.arange(10), 5) + 10), ("labels.npy", "label 10")),
    Row("robust CIFAR-C garbage labels.npy", _cifar_c(b"garbage"), ("labels.npy",)),
    Row("robust CIFAR-C float32 images", _cifar_c(np.tile(np.arange(10), 5), np.zeros((50, 32, 32, 3), np.float32)),
        ("gaussian_noise.npy",)),
    Row("robust CIFAR-C 40 images for 50 labels", _cifar_c(np.tile(np.arange(10), 5),
                                                           np.zeros((40, 32, 32, 3), np.uint8)), ("gaussian_noise.npy",)),
]

EXPORT_FLAGS = [
    Row("export --output is a file", lambda t, m: ["export", str(m), "--output", str(_file(t))], ("afile.txt",)),
    Row("export --image-size 0", lambda t, m: ["export", str(m), "--output", str(t / "x"), "--image-size", "0"],
        ("image-size",)),
    Row("export --image-size -5", lambda t, m: ["export", str(m), "--output", str(t / "x"), "--image-size", "-5"],
        ("image-size",)),
    Row("export --format bogus", lambda t, m: ["export", str(m), "--output", str(t / "x"), "--format", "bogus"],
        ("bogus",)),
    Row("export --num-classes -1", lambda t, m: ["export", str(_file(t, "model_best.pth.tar", b"x")), "--arch",
                                                 "sdnet18", "--num-classes", "-1", "--output", str(t / "x")],
        ("num-classes",)),
    Row("export --num-classes 0", lambda t, m: ["export", str(_file(t, "model_best.pth.tar", b"x")), "--arch",
                                                "sdnet18", "--num-classes", "0", "--output", str(t / "x")],
        ("num-classes",)),
    Row("export --push-to-hub bad id", lambda t, m: ["export", str(m), "--output", str(t / "x"), "--push-to-hub",
                                                     "not a repo id"], ("not a repo id",)),
]

PULL_FLAGS = [
    Row("pull-weights --cache-dir is a file", lambda t, m: ["pull-weights", "some-org/some-model", "--cache-dir",
                                                            str(_file(t))], ("afile.txt",)),
    Row("pull-weights --timeout nan", lambda t, m: ["pull-weights", "some-org/some-model", "--cache-dir",
                                                    str(t / "c"), "--timeout", "nan"], ("timeout",)),
    Row("pull-weights --timeout 0", lambda t, m: ["pull-weights", "some-org/some-model", "--cache-dir",
                                                  str(t / "c"), "--timeout", "0"], ("timeout",)),
    Row("pull-weights --timeout -1", lambda t, m: ["pull-weights", "some-org/some-model", "--cache-dir",
                                                   str(t / "c"), "--timeout", "-1"], ("timeout",)),
    Row("pull-weights bad repo id", lambda t, m: ["pull-weights", "a/b/c/d", "--cache-dir", str(t / "c")],
        ("a/b/c/d",)),
]

BENCH_FLAGS = [
    Row(f"bench {flag} {value}", (lambda f, v: lambda t, m: ["bench", "--models", "resnet18", f, v])(flag, value),
        (words,))
    for flag, value, words in [("--batch-size", "0", "batch"), ("--batch-size", "-4", "batch"), ("--image-size", "0", "image"),
                               ("--image-size", "-5", "image"), ("--steps", "0", "steps"), ("--warmup", "-1", "warmup"),
                               ("--inner", "0", "inner"), ("--num-classes", "0", "classes"), ("--stem-type", "bogus", "stem_type"),
                               ("--mode", "bogus", "mode"), ("--device", "gpu", "device")]
] + [
    Row("bench --models bogus", lambda t, m: ["bench", "--models", "bogus_net"], ("bogus_net",)),
    Row("bench --output is a folder", lambda t, m: ["bench", "--models", "resnet18", "--output", str(_dir(t))],
        ("adir",)),
]

PARSE = [  # values the flag's type cannot parse, and unknown options: still one line, exit 2
    Row("train --epochs 1.5", train("--epochs", "1.5"), ("epochs",)),
    Row("train --lr abc", train("--lr", "abc"), ("lr",)),
    Row("train --bogus", train("--bogus"), ("bogus",)),
    Row("eval --batch-size nan", on_model("eval", "--batch-size", "nan"), ("batch-size",)),
    Row("robust --steps inf", on_model("robust", "--steps", "inf"), ("steps",)),
    Row("visualize --max-steps x", on_model("visualize", "--max-steps", "x"), ("max-steps",)),
    Row("bench --image-size 32.5", lambda t, m: ["bench", "--image-size", "32.5"], ("image-size",)),
    Row("export without --output", lambda t, m: ["export", str(m)], ("output",)),
    Row("unknown command", lambda t, m: ["trian"], ("trian",)),
]

ROWS = (PARSE + TRAIN_FLAGS + SET_ROWS + TRAIN_FILES + MODEL_FILES + MODEL_ARG + EVAL_FLAGS + VIZ_FLAGS + ROBUST_FLAGS
        + EXPORT_FLAGS + PULL_FLAGS + BENCH_FLAGS)


# -- the check --------------------------------------------------------------------------------------
def _tree(*roots: Path) -> dict[str, tuple]:
    """Every entry under ``roots`` → (is_dir, size, mtime_ns): a change, a new file or a removal shows."""
    out = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            st = p.lstat()
            out[str(p)] = (p.is_dir(), None if p.is_dir() else st.st_size, st.st_mtime_ns)
    return out


def test_rows_have_unique_ids():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)) and len(ids) >= 150


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(row, model_dir, tmp_path, monkeypatch, capsys):
    from sdnet_cli.cli.app import main

    work = tmp_path / "work"
    work.mkdir()
    argv = row.make(work, model_dir)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = _tree(work, model_dir.parent)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    report = f"argv={argv}\nexit={exc.value.code}\nstderr:\n{err}\nstdout:\n{out}"
    assert exc.value.code == 2, report
    assert len(lines) == 1 and lines[0].startswith("error:"), report
    for w in row.words:
        assert w.lower() in lines[0].lower(), f"the error line should name {w!r}\n{report}"
    assert _tree(work, model_dir.parent) == before, f"something was written or removed\n{report}"
