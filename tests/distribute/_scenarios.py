"""Data-parallel scenarios, each run in its own process by test_data_parallel.py.

`python -m tests.distribute._scenarios BACKEND` runs one backend's scenario and
prints one line `RESULT {json}`. The environment must be ready before the
backend loads: `KERAS_BACKEND`, and for JAX
`XLA_FLAGS=--xla_force_host_platform_device_count=4`; TensorFlow's 4 logical CPU
devices are made here, first thing; the PyTorch processes get the variables that
torchrun would set (`RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`).

Every scenario compares data-parallel training with one device on the
concatenated global batch:
- the loss and its gradients with respect to the soft codes;
- the weights after three `fit` steps of a BatchNorm-free IMSVDModel with SGD;
- that the replicas really hold a slice of the batch each.
"""

import json
import os
import re
import sys
import time

import numpy as np

_START = time.perf_counter()


def _log(message):
    """Progress on stderr, with the seconds since the process started."""
    print(f"[{time.perf_counter() - _START:6.1f}s] {message}", file=sys.stderr)


GLOBAL_BATCH = 16
STEPS = 3
NUM_VARIABLES = 4
BIN_SIZE = 8
IMAGE_SHAPE = (4, 4, 1)
LEARNING_RATE = 2.0


def _codes(seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, GLOBAL_BATCH, NUM_VARIABLES, BIN_SIZE)) * 2.0
    codes = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    return codes[0].astype("float32"), codes[1].astype("float32")


def _views(seed=1):
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(GLOBAL_BATCH * STEPS,) + IMAGE_SHAPE).astype("float32")
    x2 = (x1 + 0.3 * rng.normal(size=x1.shape)).astype("float32")
    return x1, x2


def _global_dataset():
    import tensorflow as tf

    x1, x2 = _views()
    data = tf.data.Dataset.from_tensor_slices({"view_1": x1, "view_2": x2})
    return data.batch(GLOBAL_BATCH, drop_remainder=True)


def _model(model_class=None, seed=0):
    import keras

    import keras_imsvd

    keras.utils.set_random_seed(seed)
    encoder = keras.Sequential(
        [keras.layers.Flatten(), keras.layers.Dense(16, activation="tanh")]
    )
    projector = keras.Sequential(
        [
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(NUM_VARIABLES * BIN_SIZE, use_bias=False),
        ]
    )
    model_class = model_class or keras_imsvd.IMSVDModel
    model = model_class(encoder, projector=projector, bin_size=BIN_SIZE)
    model.build({"view_1": (None,) + IMAGE_SHAPE, "view_2": (None,) + IMAGE_SHAPE})
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
    return model


def _fit(model, dataset, callbacks=None):
    history = model.fit(
        dataset, epochs=1, shuffle=False, verbose=0, callbacks=callbacks
    )
    return [np.asarray(w) for w in model.get_weights()], history.history["loss"][-1]


def _max_diff(first, second):
    return float(
        max(
            np.max(np.abs(np.asarray(a) - np.asarray(b))) for a, b in zip(first, second)
        )
    )


def _fit_report(reference, distributed, initial):
    (ref_weights, ref_loss), (weights, loss) = reference, distributed
    return {
        "fit_weights_max_diff": _max_diff(ref_weights, weights),
        "fit_loss": [ref_loss, loss],
        "fit_weights_moved": _max_diff(ref_weights, initial),
    }


# -- JAX ------------------------------------------------------------------------


def _collectives(hlo_text):
    """`[(op, [shapes...]), ...]` of the collectives in compiled HLO text."""
    found = []
    pattern = r"= (.*?) (all-reduce|all-gather|all-to-all|reduce-scatter)(-start)?\("
    for line in hlo_text.splitlines():
        match = re.search(pattern, line)
        if match:
            shapes = re.findall(r"f32\[([\d,]*)\]", match.group(1))
            found.append((match.group(2), sorted(set(shapes))))
    return found


def jax_main():
    import jax

    import keras_imsvd
    from keras_imsvd import distribute

    p1, p2 = _codes()
    dim = NUM_VARIABLES * BIN_SIZE

    def gathered(a, b):
        return keras_imsvd.joint_cross_entropy(
            distribute.all_gather(a), distribute.all_gather(b)
        )

    plans = {
        # XLA's own plan: each device's rows of the batch, then all-reduce.
        "none": keras_imsvd.joint_cross_entropy,
        # Codes replicated on every device.
        "all_gather": gathered,
        # The three-step plan (shard_map).
        "row_blocks": distribute.global_joint_cross_entropy,
    }

    def loss_of(plan):
        def loss(a, b):
            total, terms = plan(a, b)
            return total, terms

        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)

    (ref_value, ref_terms), ref_grads = jax.jit(loss_of(plans["none"]))(p1, p2)
    ref_fit = _fit(_model(), _global_dataset())
    initial = _model().get_weights()

    shards = []

    class Recording(keras_imsvd.IMSVDModel):
        def compute_loss(
            self, x=None, y=None, y_pred=None, sample_weight=None, training=True
        ):
            # The images of a step, as the model receives them.
            jax.debug.inspect_array_sharding(
                x["view_1"],
                callback=lambda s, shape=x["view_1"].shape: shards.append(
                    [list(s.shard_shape(shape)), len(s.device_set)]
                ),
            )
            return super().compute_loss(x, y, y_pred, sample_weight, training)

    result = {"devices": len(jax.devices())}
    with distribute.data_parallel() as replicas:
        result["num_replicas"] = replicas.num_replicas
        layout = replicas.distribution.get_data_layout(p1.shape).backend_layout
        args = [jax.device_put(p, layout) for p in (p1, p2)]
        result["input_shards"] = [
            list(s.data.shape) for s in args[0].addressable_shards
        ]
        hlo = {}
        for name, plan in plans.items():
            step = jax.jit(loss_of(plan))
            (value, terms), grads = step(*args)
            result[f"{name}_value_diff"] = float(abs(value - ref_value))
            result[f"{name}_terms_max_diff"] = _max_diff(
                [ref_terms[k] for k in sorted(terms)], [terms[k] for k in sorted(terms)]
            )
            result[f"{name}_grad_max_diff"] = _max_diff(ref_grads, grads)
            hlo[name] = _collectives(step.lower(*args).compile().as_text())
        result["collectives"] = hlo
        result["dim"] = dim
        result["fit"] = _fit_report(
            ref_fit, _fit(_model(Recording), _global_dataset()), initial
        )
    result["step_input_shards"] = shards
    return result


def jax_processes_main():
    """Two JAX processes (hosts), joined by `keras.distribution.initialize()`."""
    import jax

    from keras_imsvd import distribute

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    result = {}
    with distribute.data_parallel() as replicas:
        result.update(
            process_index=replicas.process_index,
            num_processes=replicas.num_processes,
            num_replicas=replicas.num_replicas,
        )
        distributed = _fit(_model(), replicas.distribute_dataset(_global_dataset()))
    initial = _model().get_weights()
    result["fit"] = _fit_report(_fit(_model(), _global_dataset()), distributed, initial)
    # Both processes leave together: process 0 hosts the coordination service,
    # and the other aborts if it disappears first.
    jax.distributed.shutdown()
    return result


# -- TensorFlow -----------------------------------------------------------------


def tensorflow_main():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 4
    )
    import keras_imsvd
    from keras_imsvd import distribute

    p1, p2 = _codes()

    def loss_and_grads(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            loss = distribute.global_joint_cross_entropy(a, b)[0]
            scaled = distribute.scale_loss_for_replicas(loss)
        return loss, tape.gradient(scaled, [a, b])

    ref_value, ref_grads = loss_and_grads(tf.constant(p1), tf.constant(p2))
    ref_fit = _fit(_model(), _global_dataset())
    initial = _model().get_weights()

    seen = []

    class Recording(keras_imsvd.IMSVDModel):
        def compute_loss(
            self, x=None, y=None, y_pred=None, sample_weight=None, training=True
        ):
            context = tf.distribute.get_replica_context()
            seen.append(
                [
                    list(y_pred["view_1"].shape),
                    y_pred["view_1"].device,
                    context.num_replicas_in_sync,
                ]
            )
            return super().compute_loss(x, y, y_pred, sample_weight, training)

    devices = [f"/cpu:{i}" for i in range(4)]
    result = {}
    with distribute.data_parallel(devices=devices) as replicas:
        strategy = replicas.strategy
        result["num_replicas"] = replicas.num_replicas
        local = GLOBAL_BATCH // replicas.num_replicas

        def split(array):
            return strategy.experimental_distribute_values_from_function(
                lambda context: tf.constant(
                    array[context.replica_id_in_sync_group * local :][:local]
                )
            )

        values, grads = strategy.run(
            tf.function(loss_and_grads), args=(split(p1), split(p2))
        )
        values = strategy.experimental_local_results(values)
        grads = [
            np.concatenate([g.numpy() for g in strategy.experimental_local_results(x)])
            for x in grads
        ]
        result["value_diff"] = float(
            max(abs(v.numpy() - ref_value.numpy()) for v in values)
        )
        result["grad_max_diff"] = _max_diff([g.numpy() for g in ref_grads], grads)
        model = _model(Recording)
        result["fit"] = _fit_report(ref_fit, _fit(model, _global_dataset()), initial)
    result["compute_loss_replicas"] = seen
    return result


# -- PyTorch --------------------------------------------------------------------


def torch_main():
    import keras
    import torch

    import keras_imsvd
    from keras_imsvd import distribute

    torch.set_num_threads(1)
    p1, p2 = _codes()

    def loss_and_grads(a, b):
        a = torch.tensor(a, requires_grad=True)
        b = torch.tensor(b, requires_grad=True)
        loss = distribute.global_joint_cross_entropy(a, b)[0]
        loss.backward()
        return float(loss.detach()), [a.grad.numpy(), b.grad.numpy()]

    _log("torch: imported")
    ref_value, ref_grads = loss_and_grads(p1, p2)
    ref_fit = _fit(_model(), _global_dataset())
    initial = _model().get_weights()
    _log("torch: single-device reference done")

    seen = []

    class Recording(keras_imsvd.IMSVDModel):
        def compute_loss(
            self, x=None, y=None, y_pred=None, sample_weight=None, training=True
        ):
            seen.append(list(y_pred["view_1"].shape))
            return super().compute_loss(x, y, y_pred, sample_weight, training)

    class FailOnce(keras.callbacks.Callback):
        def __init__(self, rank):
            super().__init__()
            self.rank = rank

        def on_train_batch_end(self, batch, logs=None):
            if self.rank == failing_rank and batch == 0:
                raise RuntimeError("scenario: this process fails on purpose")

    failing_rank = int(os.environ.get("SCENARIO_FAIL_RANK", "-1"))
    result = {}
    with distribute.data_parallel(timeout=60) as replicas:
        rank, world = replicas.process_index, replicas.num_replicas
        _log(f"torch: process group ready, rank {rank} of {world}")
        result.update(rank=rank, num_replicas=world)
        local = GLOBAL_BATCH // world
        rows = slice(rank * local, (rank + 1) * local)
        value, grads = loss_and_grads(p1[rows], p2[rows])
        result["value_diff"] = abs(value - ref_value)
        # The gather's backward sums each slice's gradient over the `world`
        # processes; SynchronizeReplicas divides by `world` when it averages.
        result["grad_max_diff"] = _max_diff(
            [g[rows] for g in ref_grads], [g / world for g in grads]
        )
        distributed = _fit(
            _model(Recording),
            replicas.distribute_dataset(_global_dataset()),
            callbacks=[distribute.SynchronizeReplicas()],
        )
        result["fit"] = _fit_report(ref_fit, distributed, initial)
        result["compute_loss_batches"] = seen
        _log("torch: data-parallel fit done")
        _emit(result)
        if failing_rank >= 0:
            # One process fails after a step; the other, waiting for it in the
            # next step's gather, must fail too instead of hanging.
            _model().fit(
                replicas.distribute_dataset(_global_dataset()),
                verbose=0,
                callbacks=[distribute.SynchronizeReplicas(), FailOnce(rank)],
            )
            _log("torch: the failure scenario did not fail")


def _emit(result):
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main = {
        "jax": jax_main,
        "jax-processes": jax_processes_main,
        "tensorflow": tensorflow_main,
        "torch": torch_main,
    }
    result = main[sys.argv[1]]()
    if result is not None:
        _emit(result)
    sys.stderr.flush()
    # Skip the slow teardown of three frameworks' threads.
    os._exit(0)
