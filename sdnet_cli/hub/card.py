"""Model cards (``README.md``) in the Hugging Face Hub format: YAML front matter, then markdown.

Front matter keys follow the Hub's model card spec: ``license``, ``library_name``, ``tags``, ``datasets``,
``metrics``, ``pipeline_tag`` and, when an accuracy is known, a ``model-index`` entry. The body: what the
model is, how it was trained, its accuracy, robustness numbers from a ``sdnet robust`` ``results.json``
when one sits next to the run, usage from the CLI and from Python, and the paper's citation.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..models.files import ModelConfig
from ..errors import UsageError

HUB_DATASET_IDS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet-1k"}
DATASET_TITLES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ImageNet-1k", "digits": "digits (UCI optdigits)"}
ACCURACY_KEYS = ("top1", "accuracy", "acc1", "test_acc", "test_accuracy", "best_acc", "val_acc")

CITATION = """@inproceedings{dai2022revisiting,
  title     = {Revisiting Sparse Convolutional Model for Visual Recognition},
  author    = {Dai, Xili and Li, Mingyang and Zhai, Pengyuan and Tong, Shengbang and Gao, Xingjian and
               Huang, Shao-Lun and Zhu, Zhihui and You, Chong and Ma, Yi},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2022}
}"""

_ARCH_TEXT = {
    "sdnet18": "ResNet-18 whose stem convolution is a convolutional sparse coding (CSC) layer",
    "sdnet34": "ResNet-34 whose stem convolution is a convolutional sparse coding (CSC) layer",
    "sdnet18_all": "ResNet-18 in which every 3×3 convolution is a convolutional sparse coding (CSC) layer",
    "sdnet34_all": "ResNet-34 in which every 3×3 convolution is a convolutional sparse coding (CSC) layer",
    "resnet18": "ResNet-18 baseline (ordinary convolutions)",
    "resnet34": "ResNet-34 baseline (ordinary convolutions)",
}


def accuracy_of(metrics: dict[str, Any]) -> float | None:
    """Top-1 accuracy in percent from a ``config.json`` ``metrics`` dict (sdnet stores accuracies in %)."""
    for key in ACCURACY_KEYS:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def front_matter(config: ModelConfig, accuracy: float | None, name: str) -> dict[str, Any]:
    """The YAML metadata block of the card."""
    meta: dict[str, Any] = {
        "license": "mit",
        "library_name": "sdnet",
        "pipeline_tag": "image-classification",
        "tags": ["sdnet", "sparse-coding", "convolutional-sparse-coding", "image-classification", "pytorch",
                 "safetensors", config.architecture],
    }
    if config.dataset in HUB_DATASET_IDS:
        meta["datasets"] = [HUB_DATASET_IDS[config.dataset]]
    meta["metrics"] = ["accuracy"]
    if accuracy is not None:
        dataset = config.dataset or "unknown"
        meta["model-index"] = [{
            "name": name,
            "results": [{
                "task": {"type": "image-classification", "name": "Image Classification"},
                "dataset": {"name": DATASET_TITLES.get(dataset, dataset), "type": HUB_DATASET_IDS.get(dataset, dataset)},
                "metrics": [{"type": "accuracy", "name": "top-1 accuracy", "value": round(accuracy, 2)}],
            }],
        }]
    return meta


def _pct(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def _robust_section(robust: dict[str, Any]) -> list[str]:
    """Markdown of a ``sdnet robust`` report: summary by λ mode, then one row per condition (accuracy in %)."""
    lines = ["## Robustness", "",
             "Measured with `sdnet robust` (full report in `robustness.json`). Top-1 accuracy (%) with the training λ "
             "(`train`), the best λ of the sweep for each condition (`best`, an oracle) and the per-sample λ fitted "
             "from the first layer's reconstruction error (`auto`).", ""]
    summary = robust.get("summary") if isinstance(robust.get("summary"), dict) else {}
    conds = [c for c in summary.get("per_condition", []) if isinstance(c, dict)]
    if conds:
        modes = ("train", "best", "auto")
        lines += ["| | " + " | ".join(modes) + " |", "|---|---|---|---|"]
        clean = summary.get("clean") or {}
        if clean:
            lines.append("| clean | " + " | ".join(_pct(clean.get(m)) for m in modes) + " |")
        means = summary.get("means") or {}
        if means:
            lines.append("| mean over corruptions | " + " | ".join(_pct((means.get(m) or {}).get("mean")) for m in modes) + " |")
        lines += ["", "| corruption | severity | train | best (λ) | auto (mean λ) |", "|---|---|---|---|---|"]
        for c in conds[:200]:
            lines.append(f"| {c.get('corruption', '–')} | {c.get('severity', '–')} | {_pct(c.get('acc_train'))} | "
                         f"{_pct(c.get('acc_best'))} ({c.get('best_lambda', '–')}) | {_pct(c.get('acc_auto'))} "
                         f"({_pct(c.get('auto_lambda_mean'))}) |")
    else:
        rows = [r for r in robust.get("results", []) if isinstance(r, dict)]
        lines += ["| corruption | severity | λ | accuracy | reconstruction error |", "|---|---|---|---|---|"]
        for r in rows[:200]:
            rec = r.get("recon_error")
            lines.append(f"| {r.get('corruption', '–')} | {r.get('severity', '–')} | {r.get('lambda', '–')} | "
                         f"{_pct(r.get('accuracy'))} | {f'{rec:.4g}' if isinstance(rec, (int, float)) else '–'} |")
    lines.append("")
    return lines


def render_model_card(
    config: ModelConfig,
    *,
    name: str,
    repo_id: str | None = None,
    recipe: str | None = None,
    robust: dict[str, Any] | None = None,
    source: str | None = None,
) -> str:
    """The ``README.md`` text: ``---`` YAML front matter ``---`` then markdown.

    ``recipe``: the training recipe (YAML text of the run's resolved config, or a sentence);
    ``robust``: a ``sdnet robust`` ``results.json`` object; ``source``: where the weights came from.
    """
    accuracy = accuracy_of(config.metrics)
    meta = front_matter(config, accuracy, name)
    ref = repo_id or "ORG/NAME"
    dataset = config.dataset or "–"
    args = ", ".join(f"{k}={v}" for k, v in sorted(config.model_args.items())) or "defaults"
    trained = config.metrics.get("image_size")
    side = trained if isinstance(trained, int) else (224 if config.stem_type == "imagenet" else 32)
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# {name}", "",
        f"An SDNet model ({_ARCH_TEXT.get(config.architecture, config.architecture)}) for "
        f"{DATASET_TITLES.get(dataset, dataset)} classification, from \"Revisiting Sparse Convolutional Model for "
        "Visual Recognition\" (NeurIPS 2022). Weights in safetensors, loadable with the `sdnet` toolkit.", "",
        "## Architecture", "",
        f"- architecture: `{config.architecture}`, stem_type `{config.stem_type}`, {config.num_classes} classes",
        f"- model arguments: {args}",
        "- each CSC layer computes z = argmin λ‖z‖₁ + μ/2‖z‖² + ½‖x − Dz‖² by unrolled FISTA; the step sizes "
        "(0.9 / L) are stored in the checkpoint and used as stored in evaluation",
    ]
    if config.mean is not None and config.std is not None:
        lines.append(f"- input normalisation: mean {list(config.mean)}, std {list(config.std)}")
    lines += ["", "## Training", ""]
    if source:
        lines += [f"Source: {source}.", ""]
    if recipe and "\n" in recipe.strip():
        lines += ["Resolved training configuration:", "", "```yaml", recipe.rstrip(), "```", ""]
    else:
        lines += [recipe or "No training configuration was found next to the model.", ""]
    lines += ["## Accuracy", ""]
    lines += [f"Top-1 accuracy on the {DATASET_TITLES.get(dataset, dataset)} test set: **{accuracy:.2f} %**.", ""] \
        if accuracy is not None else ["No accuracy was recorded with this model.", ""]
    if robust:
        lines += _robust_section(robust)
    lines += [
        "## Usage", "",
        "With the `sdnet` toolkit installed:", "",
        "```bash", f"sdnet pull-weights {ref}",
        f"sdnet eval {ref}" + (f" --dataset {config.dataset}" if config.dataset else ""), "```", "",
        "```python", "import torch", "import sdnet_cli as sd", "",
        f"model = sd.load_model(\"{ref}\")  # eval mode, step sizes as stored",
        f"x = torch.randn(1, {config.model_args.get('in_chans', 3)}, {side}, {side})  # a normalised image batch",
        "logits = model(x)",
        "sd.set_lmbd(model, 0.5)  # larger λ in the first CSC layer: more robust to noisy inputs", "```", "",
        "## Citation", "", "```bibtex", CITATION, "```", "",
    ]
    return "\n".join(lines)


def parse_model_card(text: str) -> tuple[dict[str, Any], str]:
    """Split a card into ``(front matter dict, markdown body)``; ``ValueError`` if it has no front matter."""
    if not text.startswith("---\n"):
        raise UsageError("model card does not start with YAML front matter ('---')")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise UsageError("model card front matter is not closed by '---'")
    meta = yaml.safe_load(text[4:end])
    if not isinstance(meta, dict):
        raise UsageError("model card front matter is not a YAML mapping")
    return meta, text[end + 5:]
