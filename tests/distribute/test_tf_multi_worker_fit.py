"""Keras' TensorFlow `fit` under MultiWorkerMirroredStrategy, with 2 real workers.

Keras 3.15's `fit` fails under `tf.distribute.MultiWorkerMirroredStrategy` for
every input form tried (a plain `Sequential` model on `(x, y)` batches, and
`IMSVDModel` on dict and `((x1, x2),)` tuple batches): it converts a
`PerReplica` value to a tensor (keras-team/keras#20329). So train.py does not
offer TensorFlow multi-worker training. This test runs the minimal reproduction
of docs/distributed.md and is an expected failure: once Keras fixes it, the
test passes, fails as strict, and says that the limitation can be lifted.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import pytest

_WORKER = """
import json, os, sys
os.environ["TF_CONFIG"] = sys.argv[1]
import numpy as np, tensorflow as tf, keras
x = np.random.default_rng(0).random((256, 4)).astype("float32")
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
dataset = tf.data.Dataset.from_tensor_slices((x, x[:, :1]))
dataset = dataset.batch(64, drop_remainder=True)
model.fit(dataset, epochs=1, verbose=0)
print("fit finished")
"""


class _PerReplicaConversion(Exception):
    """The failure of keras-team/keras#20329, and no other."""


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="runs in the tensorflow suite"
)
@pytest.mark.xfail(
    raises=_PerReplicaConversion,
    strict=True,
    reason="keras-team/keras#20329: fit under MultiWorkerMirroredStrategy",
)
def test_fit_under_multi_worker_mirrored_strategy():
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                json.dumps(
                    {
                        "cluster": {"worker": workers},
                        "task": {"type": "worker", "index": index},
                    }
                ),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for index in range(2)
    ]
    logs = [p.communicate(timeout=300)[0] for p in processes]
    for process, log in zip(processes, logs):
        if "PerReplica" in log and "to a Tensor" in log:
            raise _PerReplicaConversion(log[-500:])
        assert process.returncode == 0 and "fit finished" in log, log[-1500:]
