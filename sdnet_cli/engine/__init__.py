"""Training and evaluation engine.

- ``train.train(config) -> TrainResult``: validation, lock and set-up of a run, then ``trainer.Trainer`` (the loop
  in named phases), with ``data`` (training/validation/test loaders), ``precision`` (AMP), ``state`` (exact
  resume), ``rundir`` (the run directory: layout, finding runs, lock, staging for ``--force``), ``logs``
  (steps.jsonl, TensorBoard), ``distributed`` (torchrun, sharded batches, CPU SyncBatchNorm), ``schedule``
  (learning rates), ``setup`` (CPU settings, model, optimizer), ``callbacks`` (progress hooks).
- ``metrics_loop.loader_metrics`` (metrics over a loader) and ``eval_model.evaluate(EvalOptions) -> EvalReport`` (``sdnet eval``).
"""
