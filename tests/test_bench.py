"""``sdnet bench``: interleaved timing, medians, ratios, peak memory, CLI errors."""

from __future__ import annotations

import json
import time

import pytest
import torch
from typer.testing import CliRunner

from sdnet_cli import create_model
from sdnet_cli.bench import BenchOptions, Workload, parse_models, run
from sdnet_cli.bench.memory import measure_in_child
from sdnet_cli.bench.timing import interleaved_times, median
from sdnet_cli.cli.app import app, main
from sdnet_cli.errors import UsageError
from sdnet_cli.layers import csc_layers

CPU = torch.device("cpu")


def test_rounds_interleave_and_rotate() -> None:
    calls: list[str] = []
    steps = [lambda n=n: calls.append(n) for n in "abc"]
    times = interleaved_times(steps, rounds=3, warmup=1, device=CPU)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [len(t) for t in times] == [3, 3, 3]


def test_medians_and_ratios_follow_step_cost() -> None:
    fast, slow = (lambda: time.sleep(0.01)), (lambda: time.sleep(0.03))
    times = interleaved_times([fast, slow], rounds=5, warmup=0, device=CPU)
    ratio = median(times[1]) / median(times[0])
    assert 2.0 < ratio < 4.0, ratio
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_parse_models() -> None:
    assert parse_models(" resnet18, sdnet18 ,") == ("resnet18", "sdnet18")
    with pytest.raises(UsageError, match="no model"):
        parse_models(" , ")


@pytest.mark.parametrize("kwargs,message", [
    ({"models": "resnet18,nope"}, "unknown model 'nope'"), ({"mode": "fast"}, "mode must be one of"),
    ({"steps": 0}, "steps must be an integer >= 1"), ({"inner": 0}, "inner must be"),
    ({"batch_size": 0}, "batch size must be >= 1"), ({"image_size": 4}, "image-size must be an integer >= 8"),
    ({"stem_type": "tiny"}, "stem_type must be one of"), ({"device": "tpu"}, "--device must be"),
])
def test_options_are_validated_at_construction(kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        BenchOptions(**kwargs)


def test_run_bench_report_is_consistent() -> None:
    """The library call behind ``sdnet bench`` (driven without Typer): medians, paired ratios, the step-size column."""
    rep = run(BenchOptions(models=("resnet18", "sdnet18"), batch_size=2, image_size=8, steps=3, warmup=1,
                           memory=False, device="cpu", memory_reuse=False)).to_dict()
    rows = {r["model"]: r for r in rep["results"]}
    assert list(rows) == ["resnet18", "sdnet18"]
    for name, r in rows.items():
        assert r["params"] == sum(p.numel() for p in create_model(name, num_classes=10).parameters())
        assert len(r["times_ms"]) == 3
        assert r["ms_per_step"] == pytest.approx(sorted(r["times_ms"])[1])
        assert r["img_per_s"] == pytest.approx(2 / (r["ms_per_step"] / 1000))
        assert "memory_mb" not in r
    assert rows["resnet18"]["ratio"] == 1.0
    per_round = sorted(a / b for a, b in zip(rows["sdnet18"]["times_ms"], rows["resnet18"]["times_ms"]))
    assert rows["sdnet18"]["ratio"] == pytest.approx(per_round[1])  # median of 3 per-round ratios
    assert rows["sdnet18"]["ratio_of_medians"] == pytest.approx(rows["sdnet18"]["ms_per_step"] / rows["resnet18"]["ms_per_step"])
    assert rep["settings"]["mode"] == "train" and rep["settings"]["device"] == "cpu"
    assert "step_size_ms" not in rows["resnet18"]  # no CSC layer: nothing to track
    assert 0 < rows["sdnet18"]["step_size_ms"] < rows["sdnet18"]["ms_per_step"]
    assert 0 < rows["sdnet18"]["step_size_share"] < 1


def test_train_step_includes_the_engines_step_size_tracking() -> None:
    """With ``step_sizes`` (the default) a bench train step ends as a steady-state engine step does: the layers
    the keeper's schedule names for that step (and only they) are tracked for the dictionary the optimizer step
    left (atoms renormalised); consecutive rounds are consecutive steps."""
    from sdnet_cli.bench import build_step
    from sdnet_cli.bench.step import STEADY_STEP, STEP_SIZE_EVERY
    from sdnet_cli.engine.step_sizes import StepSizeKeeper

    for on in (True, False):
        model, step, _ = build_step(Workload("sdnet18_all", batch_size=2, image_size=8, step_sizes=on))
        layers = csc_layers(model)
        for k in range(2):
            step()
            due = StepSizeKeeper(model, STEP_SIZE_EVERY).due(STEADY_STEP + k, len(layers))[0] if on else []
            unit = [torch.allclose(m.weight.detach().flatten(1).norm(dim=1), torch.ones(m.weight.shape[0]), atol=1e-5)
                    for m in layers]
            assert [i for i, u in enumerate(unit) if u] == due
            assert due or not on


def test_train_step_updates_weights_and_eval_step_does_not() -> None:
    from sdnet_cli.bench import build_step

    for mode, changes in (("train", True), ("eval", False)):
        model, step, _ = build_step(Workload("sdnet18", batch_size=2, image_size=8, mode=mode))
        before = model.linear.weight.detach().clone()
        step()
        assert (not torch.equal(before, model.linear.weight)) == changes
        assert model.training == (mode == "train")


def _activations(amp: bool, channels_last: bool) -> dict[str, tuple[torch.dtype, bool]]:
    """One bench train step of sdnet18; each conv / CSC / BatchNorm output's dtype and whether it is channels_last."""
    import torch.nn as nn

    from sdnet_cli.bench.step import build_step
    from sdnet_cli.layers import CSCConv2d

    model, step, _ = build_step(Workload("sdnet18", batch_size=2, image_size=8, amp=amp, channels_last=channels_last))
    seen: dict[str, tuple[torch.dtype, bool]] = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, CSCConv2d, nn.BatchNorm2d)):
            m.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(
                name, (o.dtype, o.is_contiguous(memory_format=torch.channels_last))))
    step()
    return seen


def test_amp_channels_last_workload_runs() -> None:
    rep = run(BenchOptions(models=("sdnet18",), batch_size=2, image_size=8, amp=True, channels_last=True,
                           steps=1, warmup=1, memory=False, memory_reuse=False))
    assert rep.settings["amp"] and rep.settings["channels_last"]
    assert rep.results[0].ms_per_step > 0
    amp = _activations(amp=True, channels_last=True)
    assert "layer0.0" in amp and len(amp) == 40  # the CSC stem, 19 convs, 20 BatchNorms
    assert set(amp.values()) == {(torch.bfloat16, True)}, amp
    plain = _activations(amp=False, channels_last=False)
    assert {d for d, _ in plain.values()} == {torch.float32} and not plain["layer0.0"][1]


@pytest.mark.slow
def test_child_memory_covers_weights_and_grows_with_batch() -> None:
    """Peak RSS above the runtime ≥ weights + gradients + momentum, and larger for a larger batch."""
    n = sum(p.numel() for p in create_model("resnet18", num_classes=10).parameters())
    small = measure_in_child(Workload("resnet18", batch_size=2, image_size=16), steps=2)
    large = measure_in_child(Workload("resnet18", batch_size=32, image_size=32), steps=2)
    assert small["memory_mb"] >= 3 * n * 4 / 2**20 * 0.95
    assert large["memory_mb"] > small["memory_mb"] + 50  # resnet18 activations at batch 32, 32x32 are > 100 MB
    assert large["total_mb"] > large["memory_mb"]


def test_cli_json_and_output_file(tmp_path) -> None:
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "--models", "resnet18,sdnet18", "-b", "2", "--image-size", "8",
                                   "--steps", "2", "--warmup", "0", "--no-memory", "--no-memory-reuse", "--mode", "eval",
                                   "--device", "cpu", "--json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r["model"] for r in rep["results"]] == ["resnet18", "sdnet18"]
    assert rep["settings"]["mode"] == "eval" and rep["settings"]["batch_size"] == 2
    assert rep["settings"]["memory_reuse"] is False  # asked off: this (pytest) process keeps its allocator
    assert json.loads(out.read_text()) == rep


@pytest.mark.parametrize("args,message", [
    (["--models", "resnet18,nope"], "unknown model 'nope'"),
    (["--mode", "fast"], "mode must be one of train, eval"),
    (["--steps", "0"], "steps must be an integer >= 1"),
    (["--batch-size", "0"], "batch size must be >= 1"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--image-size", "2"], "cuda" if not torch.cuda.is_available() else "image-size"),
])
def test_cli_bad_input_exits_2_with_one_line(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", "--no-memory", "--no-memory-reuse", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_train_vs_bench_script_pairs_the_engine_step_with_the_bench_step(monkeypatch) -> None:
    """scripts/train_vs_bench.py: both sides run (the engine's at the keeper's steady state, on real digits
    batches of the asked size, with the ImageNet stem when asked), in turns, and the ratios are theirs."""
    import argparse
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_vs_bench.py"
    spec = importlib.util.spec_from_file_location("train_vs_bench", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    shapes = []
    real_step = script.Trainer.step

    def step(self, x, y, data_s):  # noqa: ANN001, ANN202
        shapes.append((tuple(x.shape), self.s.mcfg.stem_type, self.loop.global_step))
        return real_step(self, x, y, data_s)

    monkeypatch.setattr(script.Trainer, "step", step)
    args = argparse.Namespace(model="sdnet18", batch_size=2, image_size=64, stem_type="imagenet", rounds=3, warmup=1)
    r = script.measure(args)
    assert shapes == [((2, 3, 64, 64), "imagenet", 100 + i) for i in range(4)]
    assert r["rounds"] == 3 and r["engine_ms"] > 0 and r["bench_ms"] > 0
    assert r["quartiles"][0] <= r["paired_median"] <= r["quartiles"][1]
