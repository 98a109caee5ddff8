"""Run timm's own model tests (``tests/test_models.py`` of the installed timm, unedited) on every sdnet model.

    python scripts/timm_suite.py /path/to/timm/tests [-k EXTRA] [-- PYTEST_ARGS...]

The tests folder is timm's, at the installed version (e.g. ``pip download timm==$(python -c 'import timm;
print(timm.__version__)') --no-binary :all: --no-deps`` and unpack ``tests/``). It is read, never copied
into this repository. Two pytest runs, in a temporary folder (so this repository's pytest options stay out):

1. ``test_models.py -p sdnet_cli.timm -k "sdnet and not torchscript"``: the plugin import registers the
   sdnet models with timm before collection, so every test parametrised over ``timm.list_models()`` picks
   them up (forward, backward, default cfgs, features_only, fx forward/backward). TorchScript is excluded
   as timm excludes models (its ``EXCLUDE_JIT_FILTERS``): ``torch.jit.script`` is deprecated in this torch.
2. The tests timm parametrises by *model module* (``list_models(module=FEAT_INTER_FILTERS)``: forward
   intermediates, the ``features_only`` getter, the pruning contract) never select a model registered from
   another package, so a generated test file calls those same functions of timm's module for each sdnet name.

Prints both pytest summaries; the exit status is non-zero when either run fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE_TESTS = ("test_model_forward_intermediates", "test_model_forward_intermediates_features",
                "test_prune_intermediate_layers_contract")

WRAPPER = '''
import importlib.util, sys
import pytest
import sdnet_cli.timm
spec = importlib.util.spec_from_file_location("timm_test_models", {path!r})
T = importlib.util.module_from_spec(spec)
spec.loader.exec_module(T)


@pytest.mark.parametrize("model_name", sdnet_cli.timm.SDNET_MODELS)
def test_model_forward_intermediates(model_name):
    T.test_model_forward_intermediates(model_name, 1)


@pytest.mark.parametrize("model_name", sdnet_cli.timm.SDNET_MODELS)
def test_model_forward_intermediates_features(model_name):
    T.test_model_forward_intermediates_features(model_name, 1)


@pytest.mark.parametrize("model_name", sdnet_cli.timm.SDNET_MODELS)
def test_prune_intermediate_layers_contract(model_name):
    T.test_prune_intermediate_layers_contract(model_name)
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", type=Path, help="timm's tests folder (holding test_models.py)")
    parser.add_argument("-k", dest="extra", default="", help="extra -k expression ANDed with the selection")
    parser.add_argument("pytest_args", nargs="*", help="passed to both pytest runs (after --)")
    args = parser.parse_args(argv)
    suite = (args.tests / "test_models.py").resolve()
    if not suite.is_file():
        parser.error(f"{suite} not found: pass timm's tests folder")
    select = "sdnet and not torchscript" + (f" and ({args.extra})" if args.extra else "")
    common = ["-q", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning", *args.pytest_args]
    status = 0
    with tempfile.TemporaryDirectory(prefix="timm_suite_") as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "test_sdnet_by_module.py").write_text(WRAPPER.format(path=str(suite)))
        base = [sys.executable, "-m", "pytest", "-c", str(root / "pytest.ini"), "--rootdir", str(root)]
        runs = [("timm test_models.py, models from timm.list_models()",
                 [str(suite), "-p", "sdnet_cli.timm", "-k", select]),
                ("timm test_models.py, module-filtered tests on the sdnet names",
                 [str(root / "test_sdnet_by_module.py")] + (["-k", args.extra] if args.extra else []))]
        for title, extra in runs:
            print(f"== {title}", flush=True)
            status |= subprocess.run(base + extra + common, cwd=root).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
