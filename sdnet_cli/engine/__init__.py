"""Training and evaluation engine.

- ``train.train(config) -> TrainResult``: the training loop (``sdnet train``), with ``state`` (exact resume),
  ``rundir`` (output layout, logs), ``distributed`` (torchrun, sharded batches, CPU SyncBatchNorm),
  ``schedule`` (learning rates), ``setup`` (device, model, optimizer, AMP), ``callbacks`` (progress hooks).
- ``evaluate.evaluate`` (metrics over a loader) and ``eval_model.eval_model(src)`` (``sdnet eval``).
"""
