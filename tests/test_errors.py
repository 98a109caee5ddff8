"""Errors by kind (issue 12 item 5): a bug is a failure (exit 1, one line, a --debug hint), never "bad input".

A ``ValueError`` is injected deep inside each command — in ``ResNet.__init__`` or ``ResNet.forward``, which
every command reaches through the real library (model build, load, forward) — and must come out as exit
code 1 with one line naming the exception and the ``--debug`` / ``SDNET_DEBUG=1`` hint. With ``--debug`` (in
any position) or ``SDNET_DEBUG=1`` the traceback is shown (a subprocess, so Python prints it). A user's mistake
still exits 2 with one line. The ``except`` clauses of the config and data code pass bugs through.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sdnet_cli.data.datasets import DIGITS_MEAN, DIGITS_STD
from sdnet_cli.errors import UsageError
from sdnet_cli.models import resnet
from sdnet_cli.models.files import ModelConfig, save_model

BUG = "injected internal bug: shapes disagree"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained sdnet18 digits 8×8 model directory (written by sdnet's own save_model)."""
    args = {"in_chans": 3, "lmbd": 0.1, "n_steps": 2, "mu": 0.0, "non_negative": True, "expansion": 1}
    cfg = ModelConfig("sdnet18", 10, "cifar", args, "digits", list(DIGITS_MEAN), list(DIGITS_STD), {"image_size": 8})
    torch.manual_seed(0)
    return save_model(cfg.build().eval(), tmp_path_factory.mktemp("errors") / "model", cfg)


def _raise(*args, **kwargs):
    raise ValueError(BUG)


def _error_line(lines: list[str]) -> str:
    """The one ``error:`` line, last on stderr (progress printed before a failure may precede it)."""
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert not any("Traceback" in ln for ln in lines), lines
    return errors[0]


def _run(argv: list[str], capsys) -> tuple[int, list[str]]:
    from sdnet_cli.cli.app import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    return exc.value.code, [ln for ln in err.splitlines() if ln.strip()]


def _commands(model: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "models": ["models"],
        "eval": ["eval", str(model)],
        "export": ["export", str(model), "--output", str(tmp / "export")],
        "visualize": ["visualize", str(model), "--what", "dictionary", "--output", str(tmp / "viz")],
        "robust": ["robust", str(model), "--max-images", "20", "--lambdas", "none", "--no-plots",
                   "--output", str(tmp / "robust")],
        "train": ["train", "--output", str(tmp / "run"), "--epochs", "1", "--set", "train.limit_batches=1",
                  "--set", "train.threads=1"],
        "bench": ["bench", "--models", "resnet18", "--batch-size", "2", "--image-size", "8", "--steps", "1",
                  "--warmup", "0", "--no-memory"],
    }


@pytest.mark.parametrize("command", ["models", "eval", "export", "visualize", "robust", "train", "bench"])
def test_injected_value_error_in_model_build_is_a_failure(command, model_dir, tmp_path, monkeypatch, capsys):
    """Every command builds a model; a ValueError raised there is a bug: exit 1, one line, the --debug hint."""
    monkeypatch.delenv("SDNET_DEBUG", raising=False)
    argv = _commands(model_dir, tmp_path)[command]
    monkeypatch.setattr(resnet.ResNet, "__init__", _raise)
    code, lines = _run(argv, capsys)
    assert code == 1, lines
    line = _error_line(lines)
    assert "ValueError" in line and BUG in line and "--debug" in line and "SDNET_DEBUG=1" in line, lines
    assert not (tmp_path / "export").exists() and not (tmp_path / "run" / "best").exists()


@pytest.mark.parametrize("command", ["eval", "visualize", "robust"])
def test_injected_value_error_in_forward_is_a_failure(command, model_dir, tmp_path, monkeypatch, capsys):
    """The same bug raised later, in the forward pass on real data."""
    monkeypatch.delenv("SDNET_DEBUG", raising=False)
    argv = _commands(model_dir, tmp_path)[command]
    monkeypatch.setattr(resnet.ResNet, "forward", _raise)
    code, lines = _run(argv, capsys)
    assert code == 1, lines
    line = _error_line(lines)
    assert "ValueError" in line and BUG in line and "--debug" in line, lines


def test_debug_reraises_in_process(model_dir, monkeypatch, capsys):
    """``--debug`` in any position, or ``SDNET_DEBUG=1``, lets the exception (and its traceback) out of ``main``;
    ``SDNET_DEBUG=0`` does not."""
    from sdnet_cli.cli.app import main

    monkeypatch.setattr(resnet.ResNet, "forward", _raise)
    monkeypatch.delenv("SDNET_DEBUG", raising=False)
    for argv in (["--debug", "eval", str(model_dir)], ["eval", str(model_dir), "--debug"]):
        with pytest.raises(ValueError, match=BUG) as e:
            main(argv)
        assert e.value.__traceback__ is not None and not isinstance(e.value, UsageError)
    monkeypatch.setenv("SDNET_DEBUG", "1")
    with pytest.raises(ValueError, match=BUG):
        main(["eval", str(model_dir)])
    monkeypatch.setenv("SDNET_DEBUG", "0")
    code, lines = _run(["eval", str(model_dir)], capsys)
    assert code == 1 and "--debug" in _error_line(lines)


_CHILD = textwrap.dedent("""
    import sys
    from sdnet_cli.models import resnet
    def boom(*a, **k):
        raise ValueError({bug!r})
    resnet.ResNet.__init__ = boom
    from sdnet_cli.cli.app import main
    main(sys.argv[1:])
""")


def _child(args: list[str], debug_env: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SDNET_DEBUG"}
    if debug_env is not None:
        env["SDNET_DEBUG"] = debug_env
    return subprocess.run([sys.executable, "-c", _CHILD.format(bug=BUG), *args], capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.slow  # a fresh interpreter each (~5 s idle, ~20 s on the busy 2-core machine)
@pytest.mark.parametrize("args, env, traceback", [
    (["models"], None, False),
    (["models", "--debug"], None, True),
    (["models"], "1", True),
])
def test_traceback_only_with_debug(args, env, traceback):
    """A real process: the traceback is printed (exit 1) only with --debug or SDNET_DEBUG=1."""
    proc = _child(args, env)
    assert proc.returncode == 1, proc.stderr
    assert ("Traceback (most recent call last)" in proc.stderr) == traceback, proc.stderr
    assert f"ValueError: {BUG}" in proc.stderr
    if traceback:
        assert "in boom" in proc.stderr  # the frame that raised
    else:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "--debug" in lines[0], proc.stderr


def test_user_mistake_exits_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SDNET_DEBUG", raising=False)
    code, lines = _run(["eval", str(tmp_path / "no_such_model")], capsys)
    assert code == 2 and len(lines) == 1 and "no_such_model" in lines[0] and "--debug" not in lines[0], lines
    code, lines = _run(["train", "--output", str(tmp_path / "r"), "--lr", "nan"], capsys)
    assert code == 2 and len(lines) == 1 and "optim.lr" in lines[0], lines
    assert not (tmp_path / "r").exists()


# -- the except clauses of config and data pass bugs through ------------------------------------------
def test_config_merge_passes_a_bug_through(monkeypatch):
    from sdnet_cli import config

    monkeypatch.setattr(config, "coerce", _raise)
    with pytest.raises(ValueError, match=BUG) as e:
        config.merge_dict(config.Config(), {"train": {"epochs": 3}})
    assert not isinstance(e.value, UsageError)
    with pytest.raises(ValueError, match=BUG) as e:
        config.resolve_config(None, {"train.epochs": 3})
    assert not isinstance(e.value, UsageError)


def test_optional_value_coercion_passes_a_bug_through(monkeypatch):
    """``data.image_size: int | None`` tries each member type; only a UsageError means "try the next one"."""
    from sdnet_cli import config, config_values

    real = config_values._coerce_number

    def buggy(key, value, tp, accepted, what):
        if tp is int:
            raise ValueError(BUG)
        return real(key, value, tp, accepted, what)

    monkeypatch.setattr(config_values, "_coerce_number", buggy)
    with pytest.raises(ValueError, match=BUG) as e:
        config.apply_overrides(config.Config(), ["data.image_size=16"])
    assert not isinstance(e.value, UsageError)


def test_skip_bad_images_skips_only_unreadable_images(tmp_path):
    """``data.skip_bad_images`` skips a damaged image (a UsageError), never a bug in the transform."""
    from train_helpers import write_image_folder

    from sdnet_cli.data.datasets import build_dataset

    write_image_folder(tmp_path, classes=2, per_class=2, size=36)
    ds = build_dataset("imagenet", "train", root=tmp_path, image_size=32, skip_bad_images=True)
    ds.transform = _raise
    with pytest.raises(ValueError, match=BUG) as e:
        ds[0]
    assert not isinstance(e.value, UsageError)


def test_damaged_cifar_is_a_usage_error_but_a_bug_is_not(tmp_path, monkeypatch):
    from train_helpers import write_fake_cifar

    from sdnet_cli.data import cifar, datasets

    write_fake_cifar(tmp_path, "cifar10", n_train=10, n_test=5)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80\x04garbage")
    with pytest.raises(UsageError, match="could not be read"):
        datasets.build_dataset("cifar10", "test", root=tmp_path, download=False)

    class Boom(Exception):
        pass

    def buggy(*a, **k):
        raise Boom(BUG)

    monkeypatch.setattr(cifar, "read_batch", buggy)
    with pytest.raises(Boom):
        datasets.build_dataset("cifar10", "train", root=tmp_path, download=False)
