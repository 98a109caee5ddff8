"""``sdnet export``: bit-exact round trip, Hub model card, ONNX against PyTorch, push (faked Hub API), bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from hub_server import make_model_dir, run_cli
from sdnet_cli import load_model
from sdnet_cli.hub.card import parse_model_card

ROBUST = {
    "model": "run", "results": [
        {"corruption": "gaussian_noise", "severity": 3, "lambda": 0.1, "accuracy": 41.25, "recon_error": 12.5, "mode": "train"},
        {"corruption": "gaussian_noise", "severity": 3, "lambda": 0.7, "accuracy": 63.5, "recon_error": 30.0, "mode": "sweep"},
    ],
    "summary": {
        "per_condition": [{"corruption": "gaussian_noise", "severity": 3, "acc_train": 41.25, "acc_best": 63.5,
                           "best_lambda": 0.7, "acc_auto": 58.75, "auto_lambda_mean": 0.55}],
        "clean": {"train": 92.5, "best": 92.5, "auto": 91.0},
        "means": {"train": {"mean": 41.25}, "best": {"mean": 63.5}, "auto": {"mean": 58.75}},
    },
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory):
    """A run-like folder: ``best/`` model dir, the resolved ``config.yaml`` and a robust ``results.json``."""
    root = tmp_path_factory.mktemp("export") / "run"
    model_dir, x, logits = make_model_dir(root / "best")
    (root / "config.yaml").write_text("model:\n  name: sdnet18\noptim:\n  lr: 0.05\n  epochs: 7\n")
    (root / "results.json").write_text(json.dumps(ROBUST))
    return root, x, logits


def test_export_round_trips_bit_exactly(run_dir, tmp_path, capsys) -> None:
    root, x, logits = run_dir
    code, out, err = run_cli(capsys, "export", root, "--output", tmp_path / "out", "--json")
    assert code == 0, err
    res = json.loads(out)
    out_dir = tmp_path / "out"
    assert sorted(res["files"]) == sorted(p.name for p in out_dir.iterdir())
    assert set(res["files"]) == {"model.safetensors", "config.json", "README.md", "robustness.json"}
    src, dst = load_file(root / "best" / "model.safetensors"), load_file(out_dir / "model.safetensors")
    assert src.keys() == dst.keys() and all(torch.equal(src[k], dst[k]) and src[k].dtype == dst[k].dtype for k in src)
    with safe_open(out_dir / "model.safetensors", "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "sdnet" and meta["architecture"] == "sdnet18"
    assert {"format_version", "sdnet_version"} <= set(meta)
    assert json.loads((out_dir / "config.json").read_text()) == json.loads((root / "best" / "config.json").read_text())
    assert json.loads((out_dir / "robustness.json").read_text()) == ROBUST
    with torch.no_grad():
        assert torch.equal(load_model(out_dir)(x), logits)


def test_model_card_is_hub_front_matter_plus_markdown(run_dir, tmp_path, capsys) -> None:
    from huggingface_hub import ModelCard

    root, _, _ = run_dir
    code, _, err = run_cli(capsys, "export", root, "--output", tmp_path / "card")
    assert code == 0, err
    text = (tmp_path / "card" / "README.md").read_text()
    meta, body = parse_model_card(text)
    hub_meta = ModelCard(text).data.to_dict()  # huggingface_hub's own parser agrees
    assert hub_meta["license"] == meta["license"] == "mit"
    assert hub_meta["library_name"] == "sdnet" and "sdnet" in hub_meta["tags"] and "sdnet18" in hub_meta["tags"]
    assert meta["metrics"] == ["accuracy"]
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == 87.5  # config.json metrics.top1
    for section in ("## Architecture", "## Training", "## Accuracy", "## Robustness", "## Usage", "## Citation"):
        assert section in body
    assert "lr: 0.05" in body  # the run's resolved config.yaml is the recipe
    assert "| gaussian_noise | 3 | 41.25 | 63.50 (0.7) | 58.75 (0.55) |" in body
    assert "sdnet pull-weights" in body and "sd.load_model(" in body and "dai2022revisiting" in body


def test_official_checkpoint_export_and_datasets(tmp_path, capsys) -> None:
    layout = json.loads((Path(__file__).parent / "data" / "official_sdnet_state_dicts.json").read_text())
    spec = layout["sdnet18-cifar10-sc-10"]
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.tensor(0.07) if k.endswith("step_size") else torch.tensor(5) if k.endswith("num_batches_tracked")
                 else torch.rand(v, generator=g) + 0.5) for k, v in spec["state_dict"].items()}
    torch.save({"state_dict": state}, tmp_path / "model_best.pth.tar")
    code, out, err = run_cli(capsys, "export", tmp_path / "model_best.pth.tar", "--arch", "sdnet18", "--num-classes", "10",
                             "--stem-type", "cifar", "--output", tmp_path / "off", "--json")
    assert code == 0, err
    config = json.loads((tmp_path / "off" / "config.json").read_text())
    assert config["dataset"] == "cifar10" and config["mean"] == [0.4914, 0.4822, 0.4465]
    assert config["metrics"]["top1"] == 95.34  # the official README's accuracy for this zoo entry
    assert load_file(tmp_path / "off" / "model.safetensors")["layer0.0.step_size"].item() == pytest.approx(0.07)
    meta, body = parse_model_card((tmp_path / "off" / "README.md").read_text())
    assert meta["datasets"] == ["cifar10"] and "95.34" in body and "Official recipe" in body


def test_onnx_matches_pytorch(run_dir, tmp_path, capsys) -> None:
    ort = pytest.importorskip("onnxruntime")
    root, x, logits = run_dir
    code, out, err = run_cli(capsys, "export", root, "--output", tmp_path / "onnx", "--format", "safetensors,onnx",
                             "--image-size", "16", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert "model.onnx" in res["files"] and res["onnx_max_abs_diff"] <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]  # batch 4: the batch axis is dynamic (exported with 2)
    assert got.shape == (4, 10)
    np.testing.assert_allclose(got, logits.numpy(), atol=1e-4, rtol=0)


class FakeHfApi:
    """Records what would go to the Hub."""

    calls: list[tuple[str, dict]] = []

    def __init__(self, token=None) -> None:
        FakeHfApi.calls.append(("init", {"token": token}))

    def create_repo(self, **kw):
        FakeHfApi.calls.append(("create_repo", kw))
        return f"https://huggingface.co/{kw['repo_id']}"

    def create_branch(self, **kw):
        FakeHfApi.calls.append(("create_branch", kw))

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        sent = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name in kw["allow_patterns"])
        FakeHfApi.calls.append(("upload_folder", {**kw, "sent": sent}))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kw['repo_id']}/commit/{'ab' * 20}"})()


def test_push_to_hub_sends_exactly_the_export(run_dir, tmp_path, capsys, monkeypatch) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    FakeHfApi.calls = []
    out_dir = tmp_path / "push"
    root, _, _ = run_dir
    assert run_cli(capsys, "export", root, "--output", out_dir)[0] == 0  # an earlier export, then a file of the user's
    (out_dir / "notes.txt").write_text("a stray file the export did not write")
    code, out, err = run_cli(capsys, "export", root, "--output", out_dir, "--push-to-hub", "me/digits-sdnet18",
                             "--private", "--revision", "v1")
    assert code == 0, err
    names = [c[0] for c in FakeHfApi.calls]
    assert names == ["init", "create_repo", "create_branch", "upload_folder"]
    kw = dict(FakeHfApi.calls[1][1])
    assert kw["repo_id"] == "me/digits-sdnet18" and kw["private"] is True and kw["exist_ok"] is True
    assert FakeHfApi.calls[2][1]["branch"] == "v1"
    up = FakeHfApi.calls[3][1]
    assert up["repo_id"] == "me/digits-sdnet18" and up["revision"] == "v1" and Path(up["folder_path"]) == out_dir
    assert up["sent"] == ["README.md", "config.json", "model.safetensors", "robustness.json"]  # not notes.txt
    assert out.strip() == f"https://huggingface.co/me/digits-sdnet18/commit/{'ab' * 20}"
    assert "me/digits-sdnet18" in (out_dir / "README.md").read_text()  # the card's usage names the repo


def _one_line_exit_2(code: int, out: str, err: str, expect: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expect.lower() in err.lower(), err


def test_bad_safetensors_header_and_shapes(run_dir, tmp_path, capsys) -> None:
    root, _, _ = run_dir
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((root / "best" / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage" + b"\0" * 32)
    _one_line_exit_2(*run_cli(capsys, "export", broken, "--output", tmp_path / "o1"), "not a readable safetensors")
    state = load_file(root / "best" / "model.safetensors")
    state["linear.weight"] = torch.zeros(7, 512)
    save_file(state, broken / "model.safetensors")
    _one_line_exit_2(*run_cli(capsys, "export", broken, "--output", tmp_path / "o2"), "wrong shapes (1): linear.weight")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_pickled_code_checkpoint_is_refused(tmp_path, capsys) -> None:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hook": os.system}, tmp_path / "evil.pth.tar")
    _one_line_exit_2(*run_cli(capsys, "export", tmp_path / "evil.pth.tar", "--arch", "sdnet18", "--num-classes", "10",
                              "--output", tmp_path / "o"), "weights_only")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, expect", [
    (["--push-to-hub", "not a repo"], "malformed Hub repo id"),
    (["--push-to-hub", "org/a--b"], "malformed Hub repo id"),
    (["--format", "tflite"], "unknown export format 'tflite'"),
    (["--arch", "sdnet18"], "describe an official .pth.tar"),
    (["--private"], "apply to --push-to-hub"),
])
def test_bad_flags_exit_2(run_dir, tmp_path, capsys, args, expect) -> None:
    root, _, _ = run_dir
    _one_line_exit_2(*run_cli(capsys, "export", root, "--output", tmp_path / "o", *args), expect)
    assert not (tmp_path / "o").exists()


def test_official_needs_arch_and_unknown_zoo_name(tmp_path, capsys) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "m.pth.tar")
    _one_line_exit_2(*run_cli(capsys, "export", tmp_path / "m.pth.tar", "--output", tmp_path / "o"), "needs --arch")
    _one_line_exit_2(*run_cli(capsys, "export", "sdnet18-cifar1O", "--output", tmp_path / "o"), "did you mean 'sdnet18-cifar10'")


def test_library_call_equals_cli(run_dir, tmp_path, capsys) -> None:
    """``hub.export(ExportOptions)`` (no Typer) writes the same files as ``sdnet export``, byte for byte."""
    from sdnet_cli.hub import ExportOptions, export

    root, _, _ = run_dir
    stages: list[str] = []
    res = export(ExportOptions(str(root), tmp_path / "lib" / "exp"), on_stage=stages.append)
    code, out, err = run_cli(capsys, "export", root, "--output", tmp_path / "cli" / "exp", "--json")
    assert code == 0, err
    cli = json.loads(out)
    assert cli["files"] == res.files and cli["architecture"] == res.config.architecture == "sdnet18"
    assert stages and stages[0].startswith("exporting")
    lib, cli_dir = tmp_path / "lib" / "exp", tmp_path / "cli" / "exp"
    for name in res.files:
        if name == "model.safetensors":  # its header's metadata order is not fixed: compare the content
            a, b = load_file(lib / name), load_file(cli_dir / name)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            with safe_open(lib / name, "pt") as fa, safe_open(cli_dir / name, "pt") as fb:
                assert fa.metadata() == fb.metadata()
        else:
            assert (lib / name).read_bytes() == (cli_dir / name).read_bytes(), name


def test_reexport_replaces_the_export_and_keeps_foreign_files(run_dir, tmp_path, capsys) -> None:
    """Owned files are rewritten or removed (a stale model.onnx), others carried over; temporaries cleaned."""
    root, x, logits = run_dir
    out = tmp_path / "exp"
    other, _, other_logits = make_model_dir(tmp_path / "other", arch="sdnet18_all", seed=3, shortcut=False)
    assert run_cli(capsys, "export", other, "--output", out)[0] == 0
    (out / "model.onnx").write_bytes(b"stale onnx of the previous export")
    (out / "notes.txt").write_text("kept")
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / ".config.json.ab12.tmp").write_text("left by a killed writer")
    dead = tmp_path / f".exp.tmp-{2**22 + 7}-deadbeef"  # a killed export's staging folder (no such pid)
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"half")
    code, _, err = run_cli(capsys, "export", root, "--output", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [".git", "README.md", "config.json", "model.safetensors",
                                                      "notes.txt", "robustness.json"]
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n" and (out / "notes.txt").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "other"]  # the dead staging folder is gone
    with torch.no_grad():
        assert torch.equal(load_model(out)(x), logits) and not torch.equal(logits, other_logits)


def test_output_that_is_a_file_exits_2(run_dir, tmp_path, capsys) -> None:
    root, _, _ = run_dir
    (tmp_path / "f").write_text("x")
    _one_line_exit_2(*run_cli(capsys, "export", root, "--output", tmp_path / "f"), "is a file")
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.parametrize("args, expect", [
    (["--num-classes", "0"], "--num-classes must be an integer >= 1"),
    (["--num-classes", "-3"], "--num-classes must be an integer >= 1"),
    (["--stem-type", "mnist"], "--stem-type must be one of cifar, imagenet"),
    (["--arch", "sdnet19"], "unknown model 'sdnet19'"),
    (["--no-shortcut"], "--no-shortcut applies to the *_all models"),
    (["--image-size", "0"], "--image-size must be an integer >= 1"),
])
def test_bad_official_flags_exit_2(tmp_path, capsys, args, expect) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "m.pth.tar")
    base = {"--arch": "sdnet18", "--num-classes": "10"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    flags = [a for kv in base.items() for a in kv] + [a for a in args if a == "--no-shortcut"]
    _one_line_exit_2(*run_cli(capsys, "export", tmp_path / "m.pth.tar", "--output", tmp_path / "o", *flags), expect)
    assert not (tmp_path / "o").exists()
