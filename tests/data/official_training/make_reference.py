"""Run the official SDNet ``train.py`` (its ``main()``) in float64 on the synthetic set of ``common.py`` and
save its trajectories to ``tests/data/official_training.npz``. README.md says how to get the official code.

    python tests/data/official_training/make_reference.py --official /path/to/SDNet [--commit SHA]

The official ``main()`` runs unchanged, on CPU, with these substitutions around it:

* ``Tensor.cuda`` / ``Module.cuda`` return their object (no GPU); ``torch.utils.tensorboard`` is a stub;
* ``build_dataloader`` returns the synthetic set: the training batches of ``common.epoch_batches`` (the last
  partial one kept, as its DataLoader does), the validation set in order;
* ``build_model`` builds the official model as usual (with its zero-input forward), then converts it to
  float64 (``.double()``: its ``step_size`` buffer is declared float32, ours follows the model's dtype) and
  loads ``common.initial_value`` into every state entry;
* the first ``update_stepsize()`` is preceded by ``torch.manual_seed(common.SEED)`` so the first
  power-iteration vectors are reproducible (the official code draws them from the global generator);
* the loss, the learning rate and every ``DictBlock.step_size`` are recorded after each optimizer step,
  ``validate``'s accuracy and loss after each epoch, and the digests of the final state after ``main()``;
* each model runs twice, the second time from ``common.nudged`` weights (each changed by one rounding):
  ``spread_*`` = how far that moves each recorded value, the trajectory's own float64 rounding spread.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "official_training.npz"


class EpochBatches:
    """A batch sampler giving epoch ``e``'s batches on its ``e``-th iteration."""

    def __init__(self) -> None:
        self.epoch = 0

    def __len__(self) -> int:
        return len(C.epoch_batches(0))

    def __iter__(self):  # noqa: ANN204
        batches = C.epoch_batches(self.epoch)
        self.epoch += 1
        return iter(batches)


def _stub_cuda_and_tensorboard() -> None:
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    tb = types.ModuleType("torch.utils.tensorboard")

    class SummaryWriter:
        def __init__(self, *a, **k) -> None: ...
        def add_scalar(self, *a, **k) -> None: ...
        def flush(self) -> None: ...
        def close(self) -> None: ...

    tb.SummaryWriter = SummaryWriter  # type: ignore[attr-defined]
    sys.modules["torch.utils.tensorboard"] = tb


def _loaders() -> tuple[DataLoader, DataLoader]:
    d = C.synthetic_data()
    train = TensorDataset(torch.from_numpy(d["x_train"]), torch.from_numpy(d["y_train"]).long())
    val = TensorDataset(torch.from_numpy(d["x_val"]), torch.from_numpy(d["y_val"]).long())
    return DataLoader(train, batch_sampler=EpochBatches()), DataLoader(val, batch_size=C.VAL_BATCH, shuffle=False)


def run_official(official: Path, model_name: str, log_dir: str, nudge: bool) -> dict[str, np.ndarray]:
    """``train.main()`` of the official code on the synthetic set; the recorded trajectories."""
    import train as T  # the official train.py
    from Lib.models.csc_layer import DictBlock

    rec: dict[str, list] = {"loss": [], "lr": [], "step_sizes": [], "val_top1": [], "val_loss": []}
    box: dict = {}

    def blocks() -> list[tuple[str, DictBlock]]:
        return [(n, m) for n, m in box["model"].module.named_modules() if isinstance(m, DictBlock)]

    def build_model(cfg):  # noqa: ANN001, ANN202
        model = orig_build(cfg).double()
        sd = model.module.state_dict()
        init = {k: C.initial_value(C.to_ours(k), tuple(v.shape)) for k, v in sd.items()}
        if nudge:
            init = {k: C.nudged(C.to_ours(k), v) if v.ndim and sd[k].is_floating_point() else v for k, v in init.items()}
        init = {k: torch.from_numpy(np.asarray(v)).to(sd[k].dtype) for k, v in init.items()}
        model.module.load_state_dict(init, strict=True)
        inner, orig_update, first = model.module, model.module.update_stepsize, [True]

        def update_stepsize() -> None:
            if first[0]:
                torch.manual_seed(C.SEED)
                first[0] = False
            orig_update()

        inner.update_stepsize = update_stepsize
        box["model"], box["keys"] = model, list(sd)
        return model

    def get_optimizer(cfg, model):  # noqa: ANN001, ANN202
        opt = orig_opt(cfg, model)

        def after_step(o, args, kwargs) -> None:  # noqa: ANN001
            rec["loss"].append(box["last_loss"])
            rec["lr"].append(o.param_groups[0]["lr"])
            rec["step_sizes"].append([float(m.step_size) for _, m in blocks()])

        opt.register_step_post_hook(after_step)
        return opt

    class RecordingLoss(nn.CrossEntropyLoss):
        def forward(self, input, target):  # noqa: ANN001, ANN202, A002
            loss = super().forward(input, target)
            box["last_loss"] = float(loss)
            return loss

    def validate(*a, **k):  # noqa: ANN002, ANN003, ANN202
        perf = orig_validate(*a, **k)
        rec["val_top1"].append(float(perf[0]))
        rec["val_loss"].append(float(perf[1]))
        return perf

    orig_build, orig_opt, orig_validate = T.build_model, T.get_optimizer, T.validate
    T.build_model, T.get_optimizer, T.validate = build_model, get_optimizer, validate
    T.build_dataloader = lambda cfg: _loaders()
    T.nn.CrossEntropyLoss = RecordingLoss
    sys.argv = ["train.py", "--cfg", str(official / "experiments" / "cifar10.yaml"), "--dir_phase", model_name,
                "LOG_DIR", log_dir, "MODEL.NAME", model_name, "MODEL.SHORTCUT", "True", "MODEL.NUM_CLASSES",
                str(C.CLASSES), "MODEL.IMAGE_SIZE", f"[{C.IMAGE}, {C.IMAGE}]", "TRAIN.END_EPOCH", str(C.EPOCHS),
                "TRAIN.BATCH_SIZE", str(C.BATCH), "TRAIN.LR", str(C.LR),
                "TRAIN.MOMENTUM", str(C.MOMENTUM), "TRAIN.WD", str(C.WD), "TEST.BATCH_SIZE", str(C.VAL_BATCH), "WORKERS", "0",
                "PRINT_FREQ", "1000"]
    T.main()
    state = box["model"].module.state_dict()
    final = {k: state[k].double().numpy() for k in box["keys"]}
    names = [C.to_ours(n + ".weight")[: -len(".weight")] for n, _ in blocks()]
    out = {f"{model_name}/{k}": np.asarray(v, dtype=np.float64) for k, v in rec.items()}
    out[f"{model_name}/layers"] = np.asarray(names)
    out[f"{model_name}/keys"] = np.asarray([C.to_ours(k) for k in box["keys"]])
    out[f"{model_name}/digests"] = _digests(final)
    return out


def _digests(final: dict[str, np.ndarray]) -> np.ndarray:
    """All digests in one flat float64 array (their lengths follow from the shapes, known to the test)."""
    return np.concatenate([C.digest(C.to_ours(k), v) for k, v in final.items()])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official", type=Path, required=True, help="a checkout of github.com/Delay-Xili/SDNet")
    p.add_argument("--model", choices=C.MODELS, help="one model (run by the parent process for each)")
    p.add_argument("--part", type=Path, help="where --model writes its part")
    p.add_argument("--nudge", action="store_true", help="start from common.nudged weights (the rounding spread)")
    p.add_argument("--commit", default="", help="the official commit (recorded in the file)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    if args.model:  # one model per process: the official code keeps its config and RNG in globals
        sys.path.insert(0, str(args.official.resolve()))
        torch.set_default_dtype(torch.float64)
        _stub_cuda_and_tensorboard()
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(args.part, **run_official(args.official.resolve(), args.model, tmp, args.nudge))
        return
    parts: dict[str, np.ndarray] = {"official_commit": np.asarray(args.commit), "torch": np.asarray(torch.__version__)}
    with tempfile.TemporaryDirectory() as tmp:
        for name in C.MODELS:
            runs = []
            for nudge in (False, True):
                part = Path(tmp) / f"{name}-{nudge}.npz"
                subprocess.run([sys.executable, __file__, "--official", str(args.official), "--model", name,
                                "--part", str(part)] + (["--nudge"] if nudge else []), check=True)
                with np.load(part, allow_pickle=False) as z:
                    runs.append({k: z[k] for k in z.files})
            parts.update(runs[0])
            for k in ("loss", "step_sizes", "digests", "val_loss"):  # the rounding spread of each recorded value
                parts[f"{name}/spread_{k}"] = np.abs(runs[1][f"{name}/{k}"] - runs[0][f"{name}/{k}"])
    np.savez_compressed(args.out, **parts)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
