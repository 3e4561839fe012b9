"""The pretrain-then-evaluate run: its settings, its steps and its output folder.

`train.py` (`keras_imsvd.cli`) translates flags into a `RunConfig` and calls
`run`. The same run from Python:

```python
from keras_imsvd import training

config = training.resolve_config(dataset="digits", epochs=2, output_dir="runs/d")
metrics = training.run(config)
```
"""

from keras_imsvd.training.callbacks import TrainingDiverged
from keras_imsvd.training.config import RECIPES
from keras_imsvd.training.config import RunConfig
from keras_imsvd.training.config import UsageError
from keras_imsvd.training.config import resolve_config
from keras_imsvd.training.evaluate import RunFailed
from keras_imsvd.training.job import Job


def run(config, log=print):
    """Trains and evaluates as `config` says; returns the metrics written.

    Raises:
        UsageError: a setting or the data cannot make a run; nothing was
            written.
        TrainingDiverged: the loss or the weights stopped being finite; the
            checkpoints of the earlier epochs are intact.
        RunFailed: the result would mean nothing (non-finite features).
    """
    return Job(config, log).run()


__all__ = [
    "RECIPES",
    "Job",
    "RunConfig",
    "RunFailed",
    "TrainingDiverged",
    "UsageError",
    "resolve_config",
    "run",
]
