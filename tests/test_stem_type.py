"""The stem kind is ``stem_type`` (``cifar`` | ``imagenet``); ``stem`` alone names the stem conv.

The old spellings of the kind (``create_model``/``ResNet`` keyword ``stem=``, config.json key ``"stem"``,
CLI flag ``--stem``) still work, each with one warning per process; files sdnet writes hold ``"stem_type"``
only; the old and new spelling given together with different values is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import sdnet_cli as sd
from cli_helpers import run_cli
from sdnet_cli.errors import UsageError
from sdnet_cli import deprecations
from sdnet_cli.models.files import ModelConfig, read_config, save_model
from sdnet_cli.models.resnet import ResNet

W = 8  # first-stage width: a small model, same structure


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh process would: no deprecation has warned yet."""
    monkeypatch.setattr(deprecations, "_warned", set())


def _caught(category: type[Warning], calls) -> tuple[list, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [call() for call in calls]
    return results, [w for w in caught if issubclass(w.category, category)]


def _saved(directory: Path, stem_type: str = "imagenet") -> Path:
    torch.manual_seed(0)
    config = ModelConfig("sdnet18", 10, stem_type, {"width": W, "lmbd": 0.2}, "digits", [0.3] * 3, [0.3] * 3)
    model = config.build()
    model(torch.randn(2, 3, 32, 32))  # step sizes set, as after training
    save_model(model.eval(), directory, config)
    return directory


def _old_style(new: Path, old: Path, stem: str | None = None) -> Path:
    """A copy of the model directory ``new`` whose config.json spells the kind ``"stem"`` (as older sdnet wrote)."""
    old.mkdir()
    os.link(new / "model.safetensors", old / "model.safetensors")
    obj = json.loads((new / "config.json").read_text())
    kind = obj.pop("stem_type")
    obj["stem"] = kind if stem is None else stem
    if stem is not None:
        obj["stem_type"] = kind
    (old / "config.json").write_text(json.dumps(obj, indent=2))
    return old


def test_files_written_hold_stem_type_not_stem(tmp_path: Path) -> None:
    obj = json.loads((_saved(tmp_path / "m") / "config.json").read_text())
    assert obj["stem_type"] == "imagenet" and "stem" not in obj
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = _old_style(tmp_path / "m", tmp_path / "old")
        model, config = sd.load_model(old), read_config(old)
    save_model(model, tmp_path / "resaved", config)  # an old file read, then written again: the new key only
    obj = json.loads((tmp_path / "resaved" / "config.json").read_text())
    assert obj["stem_type"] == "imagenet" and "stem" not in obj


def test_old_config_key_loads_the_same_model_with_one_warning(tmp_path: Path) -> None:
    new = _saved(tmp_path / "new")
    old = _old_style(new, tmp_path / "old")
    (m_old, m_old_again), hits = _caught(FutureWarning, [lambda: sd.load_model(old), lambda: sd.load_model(old)])
    assert [str(w.message) for w in hits] == ['config.json key "stem" is deprecated, use "stem_type"']
    assert hits[0].filename == str(old / "config.json")  # the warning names the file to update
    m_new = sd.load_model(new)
    assert m_old.layer0[0].kernel_size in (7, (7, 7)) and isinstance(m_old.layer0[2], torch.nn.Module)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(m_old(x), m_new(x)) and torch.equal(m_old_again(x), m_new(x))
    assert read_config(old) == read_config(new)


def test_both_keys_agreeing_load(tmp_path: Path) -> None:
    old = _old_style(_saved(tmp_path / "new", "cifar"), tmp_path / "both", stem="cifar")
    _, hits = _caught(FutureWarning, [lambda: read_config(old)])
    assert read_config(old).stem_type == "cifar" and len(hits) == 1


def test_both_keys_disagreeing_is_exit_2_through_eval(tmp_path: Path, capsys) -> None:
    bad = _old_style(_saved(tmp_path / "new", "imagenet"), tmp_path / "bad", stem="cifar")
    code, out, err = run_cli(capsys, "eval", bad, "--dataset", "digits", "--device", "cpu")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == "", err
    assert len(lines) == 1 and "config.json" in lines[0] and "stem_type ('imagenet')" in lines[0], err
    with pytest.raises(UsageError, match="both stem .'cifar', the old name. and stem_type .'imagenet'."):
        read_config(bad)


def test_old_config_key_evaluates(tmp_path: Path, capsys) -> None:
    new = _saved(tmp_path / "new", "cifar")
    old = _old_style(new, tmp_path / "old")
    (results, hits) = _caught(FutureWarning, [
        lambda: run_cli(capsys, "eval", old, "--dataset", "digits", "--device", "cpu", "--json"),
        lambda: run_cli(capsys, "eval", new, "--dataset", "digits", "--device", "cpu", "--json")])
    (code_old, out_old, err_old), (code_new, out_new, _) = results
    assert code_old == code_new == 0, err_old
    assert len(hits) == 1
    assert json.loads(out_old)["top1"] == json.loads(out_new)["top1"]


def test_create_model_stem_keyword_warns_once_and_maps(tmp_path: Path) -> None:
    torch.manual_seed(0)
    (a, b), hits = _caught(DeprecationWarning, [lambda: sd.create_model("sdnet18", stem="imagenet", width=W),
                                                lambda: sd.create_model("resnet18", stem="imagenet", width=W)])
    assert [str(w.message) for w in hits] == ["the keyword stem= is deprecated, use stem_type="]
    assert hits[0].filename == __file__  # points at the caller's line
    torch.manual_seed(0)
    want = sd.create_model("sdnet18", stem_type="imagenet", width=W)
    assert a.layer0[0].stride in (2, (2, 2)) and b.layer0[0].stride == (2, 2)
    assert all(torch.equal(v, want.state_dict()[k]) for k, v in a.state_dict().items())
    with pytest.raises(UsageError, match="both stem .'cifar', the old name. and stem_type .'imagenet'."):
        sd.create_model("sdnet18", stem="cifar", stem_type="imagenet")
    with pytest.raises(UsageError, match="stem_type must be 'imagenet'"):  # the ecosystem models map it too
        sd.create_model("torchvision:resnet18", stem="cifar")


def test_resnet_stem_keyword_warns_once_and_maps() -> None:
    conv = torch.nn.Conv2d
    (a, b), hits = _caught(DeprecationWarning, [lambda: ResNet((1, 1, 1, 1), conv, conv, stem="imagenet", width=W),
                                                lambda: ResNet((1, 1, 1, 1), conv, conv, stem="imagenet", width=W)])
    assert len(hits) == 1 and hits[0].filename == __file__
    assert a.layer0[0].kernel_size == (7, 7) and a.feature_info[0]["reduction"] == 4
    with pytest.raises(UsageError, match="both stem"):
        ResNet((1, 1, 1, 1), conv, conv, stem="cifar", stem_type="imagenet")


def test_old_field_names_of_public_classes_warn_once_and_map(tmp_path: Path) -> None:
    from sdnet_cli.bench import BenchOptions
    from sdnet_cli.hub import ExportOptions

    torch.save({"w": torch.zeros(2)}, tmp_path / "m.pth.tar")
    made = {
        ModelConfig: lambda stem: ModelConfig("sdnet18", 10, stem=stem),
        BenchOptions: lambda stem: BenchOptions(models=("resnet18",), stem=stem),
        ExportOptions: lambda stem: ExportOptions(str(tmp_path / "m.pth.tar"), tmp_path / "o", arch="sdnet18",
                                                  num_classes=10, stem=stem),
    }
    for cls, make in made.items():
        (a, b, kind), hits = _caught(DeprecationWarning, [lambda: make("imagenet"), lambda: make("imagenet"),
                                                          lambda: make("imagenet").stem])
        assert a.stem_type == b.stem_type == kind == "imagenet"
        assert [str(w.message) for w in hits] == [f"{cls.__name__}(stem=...) is deprecated, use "
                                                  f"{cls.__name__}(stem_type=...)",
                                                  f"{cls.__name__}.stem is deprecated, use {cls.__name__}.stem_type"]
    assert [w.stem_type for w in BenchOptions(models=("resnet18",), stem="imagenet").workloads] == ["imagenet"]
    with pytest.raises(TypeError, match="both stem= and stem_type="):
        ModelConfig("sdnet18", 10, stem="cifar", stem_type="imagenet")


def _bench(capsys, *flags: str) -> tuple[int, str, str]:
    return run_cli(capsys, "bench", "--models", "resnet18", "--batch-size", "2", "--image-size", "32", "--steps", "1",
                   "--warmup", "0", "--mode", "eval", "--no-memory", "--no-memory-reuse", "--device", "cpu", "--json",
                   *flags)


def test_old_stem_flag_warns_once_and_works(capsys) -> None:
    results, hits = _caught(FutureWarning, [lambda: _bench(capsys, "--stem", "imagenet"),
                                            lambda: _bench(capsys, "--stem", "imagenet")])
    assert [str(w.message) for w in hits] == ["--stem is deprecated, use --stem-type"]
    for code, out, err in results:
        assert code == 0, err
        assert json.loads(out)["settings"]["stem_type"] == "imagenet"
    code, out, err = _bench(capsys, "--stem-type", "imagenet")
    assert code == 0 and json.loads(out)["settings"]["stem_type"] == "imagenet", err
    code, out, err = _bench(capsys)
    assert code == 0 and json.loads(out)["settings"]["stem_type"] == "cifar", err


def test_old_stem_flag_of_export_maps_to_stem_type(tmp_path: Path, capsys) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "m.pth.tar")
    flags = ["export", tmp_path / "m.pth.tar", "--arch", "sdnet18", "--num-classes", "10", "--output", tmp_path / "o"]
    results, hits = _caught(FutureWarning, [lambda: run_cli(capsys, *flags, "--stem", "mnist")])
    code, _, err = results[0]
    assert code == 2 and "--stem-type must be one of cifar, imagenet, got 'mnist'" in err, err
    assert [str(w.message) for w in hits] == ["--stem is deprecated, use --stem-type"]
    assert not (tmp_path / "o").exists()


def test_old_stem_flag_is_one_stderr_line_in_a_shell() -> None:
    """A shell user sees the warning as one line, then the refusal of two disagreeing spellings (exit 2)."""
    proc = subprocess.run([sys.executable, "-m", "sdnet_cli", "bench", "--stem", "cifar", "--stem-type", "imagenet"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[0] == "sdnet bench:0: FutureWarning: --stem is deprecated, use --stem-type", proc.stderr
    assert len(lines) == 2 and "--stem cifar and --stem-type imagenet disagree" in lines[1], proc.stderr


@pytest.mark.parametrize("command", ["bench", "export"])
def test_old_stem_flag_is_hidden(command: str, capsys) -> None:
    code, shown, err = run_cli(capsys, command, "--help")
    assert code == 0, err
    assert "--stem-type" in shown and "--stem " not in shown and "Deprecated spelling" not in shown


def test_old_field_name_sets_the_new_field_on_a_mutable_config(monkeypatch) -> None:
    """``ModelConfig`` is mutable: ``cfg.stem = …`` (the old name) sets ``stem_type``, warning once."""
    monkeypatch.setattr(deprecations, "_warned", set())
    cfg = ModelConfig(architecture="sdnet18", num_classes=10)
    with warnings.catch_warnings(record=True) as hits:
        warnings.simplefilter("always")
        cfg.stem = "imagenet"
        cfg.stem = "cifar"
    assert cfg.stem_type == "cifar"
    assert [str(w.message) for w in hits] == ["ModelConfig.stem is deprecated, use ModelConfig.stem_type"]
