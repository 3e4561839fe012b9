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
- that the replicas really hold a slice of the batch each;
- one step of a model with `SyncBatchNormalization`, synchronised and not,
  against BatchNorm on the whole batch and on each replica's slice;
and the loss of codes made at several temperatures, with weights that differ
from each other, with the float64 transcription `tests/reference.py`. The
PyTorch scenario also trains a model with BatchNorm from different seeds per
process.
"""

import json
import os
import re
import sys
import time

import numpy as np

from tests import reference

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


# name: (batch, num_variables, bin_size, temperature, loss weights). The weights
# differ from each other and from 1: two weights swapped, or one dropped, change
# the loss.
WEIGHTED_CASES = {
    "k4_b8": (16, 4, 8, 0.5, (0.7, 1.9, 0.4)),
    "k3_b4": (8, 3, 4, 2.0, (1.3, 0.25, 2.5)),
}
TERMS = ("invariance_loss", "diagonal_loss", "off_diagonal_loss")
WEIGHT_NAMES = ("invariance_weight", "diagonal_weight", "off_diagonal_weight")


def _weights(name):
    """The loss weights of case `name`, as keyword arguments."""
    return dict(zip(WEIGHT_NAMES, WEIGHTED_CASES[name][4]))


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


def _weighted_codes(name):
    """Soft codes of case `name` from `SoftVariableDiscretization`, and float64.

    Returns:
        `([p1, p2], [r1, r2])`: the layer's float32 codes `(N, K, b)` and the
        float64 codes of `reference.soft_codes` from the same logits.
    """
    from keras import ops

    import keras_imsvd

    batch, num_variables, bin_size, temperature, _ = WEIGHTED_CASES[name]
    rng = np.random.default_rng(10 + sorted(WEIGHTED_CASES).index(name))
    z1 = rng.normal(scale=2.0, size=(batch, num_variables * bin_size))
    logits = [z.astype("float32") for z in (z1, z1 + rng.normal(size=z1.shape))]
    layer = keras_imsvd.SoftVariableDiscretization(bin_size, temperature=temperature)
    codes = [np.asarray(ops.convert_to_numpy(layer(z))) for z in logits]
    return codes, [reference.soft_codes(z, bin_size, temperature) for z in logits]


def _reference_errors(name, value, terms, grads, rows=slice(None)):
    """Errors of a loss, its terms and its gradients against float64.

    `grads` are the gradients of `rows` of the batch with respect to the codes
    of both views; the gradients of reference are taken at the same float32
    codes. Errors are relative to `max(1, |expected|)` for the loss and terms,
    to the largest expected entry for the gradients.
    """
    codes, reference_codes = _weighted_codes(name)
    weights = WEIGHTED_CASES[name][4]
    expected = reference.loss(*reference_codes, weights)
    expected_terms = reference.loss_terms(*reference_codes)
    expected_grads = reference.loss_gradients(*codes, weights)
    return {
        "value": float(value),
        "expected": float(expected),
        "value_error": abs(float(value) - expected) / max(1.0, abs(expected)),
        "terms_error": max(
            abs(float(terms[k]) - expected_terms[k]) / max(1.0, abs(expected_terms[k]))
            for k in TERMS
        ),
        "grad_error": max(
            float(np.max(np.abs(np.asarray(g) - e[rows])) / np.max(np.abs(e)))
            for g, e in zip(grads, expected_grads)
        ),
    }


def _spy_on_terms():
    """Wraps the term functions of `keras_imsvd.losses`; returns their calls.

    Each call is recorded as `[name, shape of p1, collectives]`, where
    collectives is `"none"`, `"one replica"` (a plain `BatchCollectives`) or
    `"replicas"` (a subclass, supplied by a distributed caller).
    """
    import importlib

    from keras_imsvd.losses import BatchCollectives

    module = importlib.import_module("keras_imsvd.losses.joint_cross_entropy")
    calls = []

    def kind(collectives):
        if collectives is None:
            return "none"
        return "one replica" if type(collectives) is BatchCollectives else "replicas"

    def spy(name):
        term = getattr(module, name)

        def recorded(p1, p2, collectives=None):
            calls.append([name, list(p1.shape), kind(collectives)])
            return term(p1, p2, collectives)

        return recorded

    for name in ("invariance_term", "diagonal_term", "off_diagonal_term"):
        setattr(module, name, spy(name))
    return calls


def _per_replica_batch_norm(replicas, **kwargs):
    """BatchNormalization as `replicas` processes run it, on one device.

    In training, each of `replicas` equal slices of the batch is normalised by
    its own statistics, as each process normalises its own samples; the moving
    statistics move by the average of the slices' updates, as
    `SynchronizeReplicas` averages them (the update is affine in the batch
    statistics, so averaging each update or the epoch's result is the same).
    """
    import keras
    from keras import ops

    class PerReplicaBatchNormalization(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            if not training:
                return super().call(inputs, training=training, mask=mask)
            moving = (self.moving_mean, self.moving_variance)
            start = [ops.copy(variable.value) for variable in moving]
            outputs, updated = [], []
            for part in ops.split(inputs, replicas, axis=0):
                for variable, value in zip(moving, start):
                    variable.assign(value)
                outputs.append(super().call(part, training=True))
                updated.append([ops.copy(variable.value) for variable in moving])
            for variable, values in zip(moving, zip(*updated)):
                variable.assign(ops.mean(ops.stack(values), axis=0))
            return ops.concatenate(outputs, axis=0)

    return PerReplicaBatchNormalization(**kwargs)


def _batch_norm_report(names, start, weights, initial, reference_weights):
    """Differences per variable, and a digest of the trained weights' bytes.

    `start` and `weights` are this process's weights before and after `fit`;
    `initial` and `reference_weights` those of one device, from rank 0's seed.
    """
    import hashlib

    def differences(first, second):
        # One per variable, in the order of `names`.
        return [float(np.max(np.abs(a - b))) for a, b in zip(first, second)]

    digest = hashlib.sha256()
    for array in weights:
        digest.update(np.ascontiguousarray(array, dtype="float32").tobytes())
    return {
        "names": names,
        "start_vs_initial": differences(start, initial),
        "moved": differences(reference_weights, initial),
        "vs_reference": differences(weights, reference_weights),
        "digest": digest.hexdigest(),
    }


def _model(model_class=None, seed=0, normalization=None, in_projector=False):
    """A small IMSVDModel, built; `normalization()` makes a layer after Dense.

    With `in_projector`, the projector's hidden layer has one too.
    """
    import keras

    import keras_imsvd

    keras.utils.set_random_seed(seed)
    if normalization is None:
        layers = [keras.layers.Dense(16, activation="tanh")]
    else:
        layers = [
            keras.layers.Dense(16),
            normalization(),
            keras.layers.Activation("tanh"),
        ]
    encoder = keras.Sequential([keras.layers.Flatten()] + layers)
    if in_projector:
        hidden = [keras.layers.Dense(32), normalization(), keras.layers.ReLU()]
    else:
        hidden = [keras.layers.Dense(32, activation="relu")]
    projector = keras.Sequential(
        hidden + [keras.layers.Dense(NUM_VARIABLES * BIN_SIZE, use_bias=False)]
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


# -- SyncBatchNormalization -------------------------------------------------------

SYNC_MOMENTUM = 0.5  # moving statistics that move visibly in one step
MOVING = ("moving_mean", "moving_variance")


def _sync_model(synchronized):
    """`_model` with `SyncBatchNormalization` in its encoder and projector."""
    from keras_imsvd.layers import SyncBatchNormalization

    def normalization():
        return SyncBatchNormalization(momentum=SYNC_MOMENTUM, synchronized=synchronized)

    return _model(normalization=normalization, in_projector=True)


def _one_step():
    """The first global batch alone: one training step."""
    return _global_dataset().take(1)


def _sync_references(replicas):
    """One device on the global batch: with its statistics, and per replica.

    Returns:
        `{"names", "initial", "global", "per_replica"}`: the variable names,
        the initial weights, and `(weights, loss)` after one step of BatchNorm
        on the whole batch and of BatchNorm on each of `replicas` slices
        (`_per_replica_batch_norm`), from the same initial weights.
    """
    model = _sync_model(True)
    names = [variable.name for variable in model.weights]
    initial = model.get_weights()

    def per_replica():
        return _per_replica_batch_norm(replicas, momentum=SYNC_MOMENTUM)

    per_replica_model = _model(normalization=per_replica, in_projector=True)
    return {
        "names": names,
        "initial": initial,
        "global": _fit(model, _one_step()),
        "per_replica": _fit(per_replica_model, _one_step()),
    }


def _sync_differences(names, first, second):
    """Largest differences of the moving means, variances, other weights, loss."""
    (weights_1, loss_1), (weights_2, loss_2) = first, second
    kinds = {"moving_mean": [], "moving_variance": [], "weights": []}
    for name, a, b in zip(names, weights_1, weights_2):
        kind = name if name in MOVING else "weights"
        kinds[kind].append(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
    report = {kind: max(values) for kind, values in kinds.items()}
    report["loss"] = abs(float(loss_1) - float(loss_2))
    return report


def _sync_report(references, runs):
    """Each data-parallel run of `runs` against both one-device references."""
    names = references["names"]
    initial = (references["initial"], references["global"][1])
    report = {
        "moved": _sync_differences(names, references["global"], initial),
        "references_apart": _sync_differences(
            names, references["global"], references["per_replica"]
        ),
    }
    for run, fitted in runs.items():
        report[run] = {
            reference: _sync_differences(names, fitted, references[reference])
            for reference in ("global", "per_replica")
        }
    return report


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
    weighted_codes = {name: _weighted_codes(name)[0] for name in WEIGHTED_CASES}
    ref_fit = _fit(_model(), _global_dataset())
    initial = _model().get_weights()
    sync_references = _sync_references(len(jax.devices()))

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
        # Each layer sees the global batch, whatever `synchronized` says.
        result["sync_batch_norm"] = _sync_report(
            sync_references,
            {
                "synchronized": _fit(_sync_model(True), _one_step()),
                "per_replica": _fit(_sync_model(False), _one_step()),
            },
        )
        calls = _spy_on_terms()
        weighted = {}
        for name, codes in weighted_codes.items():
            layout = replicas.distribution.get_data_layout(codes[0].shape)
            args = [jax.device_put(c, layout.backend_layout) for c in codes]

            def plan(a, b, name=name):
                return distribute.global_joint_cross_entropy(a, b, **_weights(name))

            del calls[:]
            weighted[name] = jax.jit(loss_of(plan))(*args), list(calls)
    result["step_input_shards"] = shards
    result["weighted"] = {
        name: _reference_errors(name, value, terms, grads)
        for name, (((value, terms), grads), _) in weighted.items()
    }
    result["term_calls"] = {name: calls for name, (_, calls) in weighted.items()}
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

    def weighted_loss_and_grads(weights):
        def step(a, b):
            with tf.GradientTape() as tape:
                tape.watch([a, b])
                loss, terms = distribute.global_joint_cross_entropy(a, b, **weights)
                scaled = distribute.scale_loss_for_replicas(loss)
            return loss, terms, tape.gradient(scaled, [a, b])

        return tf.function(step)

    def gather_and_scale(x):
        return (
            distribute.all_gather(x),
            distribute.scale_loss_for_replicas(tf.constant(2.0)),
            tf.constant(distribute.num_replicas()),
        )

    ref_value, ref_grads = loss_and_grads(tf.constant(p1), tf.constant(p2))
    weighted_codes = {name: _weighted_codes(name)[0] for name in WEIGHTED_CASES}
    ref_fit = _fit(_model(), _global_dataset())
    initial = _model().get_weights()
    sync_references = _sync_references(4)

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

        def split(array):
            local = len(array) // replicas.num_replicas
            return strategy.experimental_distribute_values_from_function(
                lambda context: tf.constant(
                    array[context.replica_id_in_sync_group * local :][:local]
                )
            )

        def local_results(values):
            return strategy.experimental_local_results(values)

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
        result["sync_batch_norm"] = _sync_report(
            sync_references,
            {
                "synchronized": _fit(_sync_model(True), _one_step()),
                "per_replica": _fit(_sync_model(False), _one_step()),
            },
        )
        gathered, scaled, counted = strategy.run(
            tf.function(gather_and_scale), args=(split(p1),)
        )
        result["all_gather_max_diff"] = max(
            float(np.max(np.abs(g.numpy() - p1))) for g in local_results(gathered)
        )
        result["scaled_loss"] = [float(v) for v in local_results(scaled)]
        result["num_replicas_seen"] = [int(v) for v in local_results(counted)]
        weighted = {}
        for name, codes in weighted_codes.items():
            values, terms, grads = strategy.run(
                weighted_loss_and_grads(_weights(name)), args=tuple(map(split, codes))
            )
            grads = [
                np.concatenate([g.numpy() for g in local_results(x)]) for x in grads
            ]
            # Every replica computes the loss of the global batch.
            weighted[name] = [
                _reference_errors(
                    name, value, {k: local_results(terms[k])[i] for k in TERMS}, grads
                )
                for i, value in enumerate(local_results(values))
            ]
    result["compute_loss_replicas"] = seen
    result["weighted"] = weighted
    return result


# -- PyTorch --------------------------------------------------------------------


def torch_main():
    import keras
    import torch

    import keras_imsvd
    from keras_imsvd import distribute

    torch.set_num_threads(1)
    p1, p2 = _codes()

    def loss_and_grads(a, b, **weights):
        a = torch.tensor(a, requires_grad=True)
        b = torch.tensor(b, requires_grad=True)
        loss, terms = distribute.global_joint_cross_entropy(a, b, **weights)
        loss.backward()
        terms = {k: float(v.detach()) for k, v in terms.items()}
        return float(loss.detach()), [a.grad.numpy(), b.grad.numpy()], terms

    _log("torch: imported")
    ref_value, ref_grads, _ = loss_and_grads(p1, p2)
    ref_fit = _fit(_model(), _global_dataset())
    initial = _model().get_weights()
    weighted_codes = {name: _weighted_codes(name)[0] for name in WEIGHTED_CASES}
    world_size = int(os.environ["WORLD_SIZE"])

    def batch_norm():
        return keras.layers.BatchNormalization(momentum=0.5)

    def per_process_batch_norm():
        return _per_replica_batch_norm(world_size, momentum=0.5)

    # Rank 0's initial weights (seed 0), trained on one device.
    batch_norm_reference = _model(seed=0, normalization=per_process_batch_norm)
    batch_norm_initial = batch_norm_reference.get_weights()
    batch_norm_reference = _fit(batch_norm_reference, _global_dataset())[0]
    sync_references = _sync_references(world_size)
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
        value, grads, _ = loss_and_grads(p1[rows], p2[rows])
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
        gathered = distribute.all_gather(torch.tensor(p1[rows]))
        result["all_gather_max_diff"] = float(np.max(np.abs(gathered.numpy() - p1)))
        result["num_replicas_seen"] = distribute.num_replicas()
        result["scaled_loss"] = float(
            distribute.scale_loss_for_replicas(torch.tensor(2.0))
        )
        weighted = {}
        for name, codes in weighted_codes.items():
            share = len(codes[0]) // world
            mine = slice(rank * share, (rank + 1) * share)
            value, grads, terms = loss_and_grads(
                codes[0][mine], codes[1][mine], **_weights(name)
            )
            grads = [g / world for g in grads]
            weighted[name] = _reference_errors(name, value, terms, grads, mine)
        result["weighted"] = weighted
        # BatchNorm, and a different seed in each process: rank 0's weights
        # must reach every process, and the moving statistics be averaged.
        model = _model(seed=rank, normalization=batch_norm)
        names = [variable.name for variable in model.weights]
        start = model.get_weights()
        weights, _ = _fit(
            model,
            replicas.distribute_dataset(_global_dataset()),
            callbacks=[distribute.SynchronizeReplicas()],
        )
        result["batch_norm_fit"] = _batch_norm_report(
            names, start, weights, batch_norm_initial, batch_norm_reference
        )
        _log("torch: data-parallel fit with BatchNorm done")
        result["sync_batch_norm"] = _sync_report(
            sync_references,
            {
                run: _fit(
                    _sync_model(synchronized),
                    replicas.distribute_dataset(_one_step()),
                    callbacks=[distribute.SynchronizeReplicas()],
                )
                for run, synchronized in (
                    ("synchronized", True),
                    ("per_replica", False),
                )
            },
        )
        _log("torch: data-parallel step with SyncBatchNormalization done")
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
