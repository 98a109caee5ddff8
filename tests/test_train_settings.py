"""Process-wide settings are explicit: ``train`` sets the thread count from ``train.threads`` and reuses freed CPU
memory only when ``train.cpu_memory_reuse`` allows it, and reports both in its start info."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = """
import json, sys, torch
from sdnet_cli.config import resolve_config
from sdnet_cli.engine.callbacks import Callbacks
from sdnet_cli.engine.train import train
from sdnet_cli.malloc import malloc_state

class Info(Callbacks):
    def on_start(self, info):
        self.info = info

out = []
for i, reuse in enumerate(("false", "true")):
    cb = Info()
    cfg = resolve_config(None, {"train.output": sys.argv[1] + f"/run{i}"},
                         ["train.epochs=1", "train.batch_size=16", "train.limit_batches=1", "train.threads=1",
                          "train.tensorboard=false", "train.device=cpu", f"train.cpu_memory_reuse={reuse}"])
    before = (malloc_state(), torch.get_num_threads())
    train(cfg, callbacks=cb)
    out.append({"before": before, "after": [malloc_state(), torch.get_num_threads()],
                "info": [cb.info["threads"], cb.info["memory_reuse"]]})
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt only")
def test_threads_and_memory_reuse_only_as_configured_and_reported(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SDNET_MALLOC_TUNING", "MALLOC_MMAP_THRESHOLD_",
                                                            "MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    off, on = json.loads(r.stdout.strip().splitlines()[-1])
    assert off["before"][0] == "default" and off["after"] == ["default", 1] and off["info"] == [1, False]
    assert on["after"] == ["tuned", 1] and on["info"] == [1, True]
