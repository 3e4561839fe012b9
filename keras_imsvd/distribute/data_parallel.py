"""`data_parallel()`: each backend's data-parallel machinery behind one call."""

import datetime
import json
import os

import keras

# `keras.distribution.initialize()` may run once per process, before JAX
# computes anything.
_JAX_STATE = {"initialized": False}


def _env_int(name, default):
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def _tf_config_workers():
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    cluster = config.get("cluster", {})
    return sum(len(cluster.get(job, [])) for job in ("chief", "worker"))


class DataParallelScope:
    """Data-parallel training of one model on many devices, on any backend.

    Returned by `keras_imsvd.distribute.data_parallel()`; see there. Use it as a
    context manager around model creation, `compile` and `fit`.

    Attributes:
        backend: The Keras backend, `"jax"`, `"tensorflow"` or `"torch"`.
        num_replicas: Replicas over all processes: each holds one slice of the
            global batch.
        num_processes: Number of processes (hosts, or torchrun workers).
        process_index: Index of this process, `0` for the chief.
        strategy: The `tf.distribute` strategy on TensorFlow, else `None`.
        distribution: The `keras.distribution.DataParallel` on JAX, else `None`.
    """

    def __init__(self, devices=None, multi_worker=None, timeout=1800):
        self.backend = keras.backend.backend()
        self.devices = devices
        self.multi_worker = multi_worker
        self.timeout = timeout
        self.strategy = None
        self.distribution = None
        self.num_replicas = 1
        self.num_processes = 1
        self.process_index = 0
        self._previous = None
        self._scope = None
        self._owns_process_group = False
        setup = {
            "jax": self._setup_jax,
            "tensorflow": self._setup_tensorflow,
            "torch": self._setup_torch,
        }.get(self.backend)
        if setup is None:
            raise ValueError(
                "data_parallel() supports the jax, tensorflow and torch backends. "
                f"Received: backend={self.backend!r}"
            )
        setup()

    # -- setup per backend --------------------------------------------------

    def _setup_jax(self):
        import jax

        multi_worker = self.multi_worker
        if multi_worker is None:
            multi_worker = _env_int("KERAS_DISTRIBUTION_NUM_PROCESSES", 1) > 1
        if multi_worker and not _JAX_STATE["initialized"]:
            keras.distribution.initialize()
            _JAX_STATE["initialized"] = True
        self.distribution = keras.distribution.DataParallel(devices=self.devices)
        mesh = self.distribution.device_mesh
        self.num_replicas = int(mesh.devices.size)
        self.num_processes = jax.process_count()
        self.process_index = jax.process_index()

    def _setup_tensorflow(self):
        import tensorflow as tf

        multi_worker = self.multi_worker
        if multi_worker is None:
            multi_worker = _tf_config_workers() > 1
        if multi_worker:
            if self.devices is not None:
                raise ValueError(
                    "With multi_worker=True each worker uses all its local "
                    "devices (set CUDA_VISIBLE_DEVICES to restrict them). "
                    f"Received: devices={self.devices!r}"
                )
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
            resolver = self.strategy.cluster_resolver
            self.num_processes = max(_tf_config_workers(), 1)
            self.process_index = resolver.task_id or 0
            if (
                resolver.task_type == "worker"
                and "chief" in resolver.cluster_spec().jobs
            ):
                self.process_index += 1
        else:
            self.strategy = tf.distribute.MirroredStrategy(devices=self.devices)
        self.num_replicas = self.strategy.num_replicas_in_sync

    def _setup_torch(self):
        import torch
        import torch.distributed as dist

        if self.devices is not None:
            raise ValueError(
                "On PyTorch, start one process per device with torchrun "
                "(--nproc-per-node); `devices` is not used. "
                f"Received: devices={self.devices!r}"
            )
        if dist.is_available() and dist.is_initialized():
            self.num_replicas = dist.get_world_size()
            self.process_index = dist.get_rank()
        else:
            world_size = _env_int("WORLD_SIZE", 1)
            if world_size > 1:
                if torch.cuda.is_available():
                    torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
                    backend = "nccl"
                else:
                    backend = "gloo"
                dist.init_process_group(
                    backend=backend,
                    timeout=datetime.timedelta(seconds=self.timeout),
                )
                self._owns_process_group = True
                self.num_replicas = dist.get_world_size()
                self.process_index = dist.get_rank()
        self.num_processes = self.num_replicas

    # -- context -------------------------------------------------------------

    def __enter__(self):
        if self.backend == "jax":
            self._previous = keras.distribution.distribution()
            keras.distribution.set_distribution(self.distribution)
        elif self.backend == "tensorflow":
            self._scope = self.strategy.scope()
            self._scope.__enter__()
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if self.backend == "jax":
            keras.distribution.set_distribution(self._previous)
        elif self.backend == "tensorflow":
            self._scope.__exit__(exc_type, exc_value, traceback)
        elif self._owns_process_group and exc_type is None:
            import torch.distributed as dist

            dist.destroy_process_group()
        return False

    # -- helpers -------------------------------------------------------------

    @property
    def is_chief(self):
        """Whether this process should write checkpoints and logs."""
        return self.process_index == 0

    def local_batch_size(self, global_batch_size):
        """Batch size that this process's dataset must yield.

        JAX and TensorFlow take the global batch in every process and split it
        themselves (`distribute_dataset` is then the identity); on PyTorch each
        process feeds its own `global_batch_size / num_processes` samples.

        Args:
            global_batch_size: Samples per step over all replicas.

        Returns:
            The per-process batch size, as an integer.
        """
        self._check_divisible(global_batch_size)
        if self.backend == "torch":
            return global_batch_size // self.num_processes
        return global_batch_size

    def _check_divisible(self, global_batch_size):
        if global_batch_size % self.num_replicas:
            raise ValueError(
                "The global batch size must be a multiple of the number of "
                f"replicas. Received: global_batch_size={global_batch_size}, "
                f"num_replicas={self.num_replicas}"
            )

    def distribute_dataset(self, dataset):
        """Gives this process its share of a dataset batched globally.

        Build the same `tf.data.Dataset` in every process, batched with the
        *global* batch size and `drop_remainder=True`. On one process, JAX
        (`keras.distribution`) and TensorFlow (`tf.distribute`) split each
        global batch over the devices themselves, so it is returned as is. On
        JAX with several processes, process `r` of `R` keeps the `r`-th slice
        of `R` of each global batch, the number of steps stays known, and
        Keras' own auto-sharding is turned off. On
        PyTorch, process `r` of `R` keeps rows `[r n, (r + 1) n)` of each
        global batch of `R n` rows. Every process still reads and augments the
        whole global batch: for a costly pipeline, shard the files or the
        samples first (`dataset.shard(num_processes, process_index)`) and batch
        with `local_batch_size(global_batch_size)` instead.

        Args:
            dataset: A `tf.data.Dataset` of global batches.

        Returns:
            The dataset this process passes to `fit`.
        """
        if self.num_processes == 1 or self.backend == "tensorflow":
            return dataset
        import tensorflow as tf

        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(
                "distribute_dataset() takes a tf.data.Dataset of global batches. "
                f"Received: dataset={type(dataset).__name__}"
            )
        if self.backend == "jax":
            return self._shard_jax_dataset(dataset)
        local = self.local_batch_size(_static_batch_size(dataset))
        start = local * self.process_index

        def take_rows(*element):
            element = element[0] if len(element) == 1 else element
            return tf.nest.map_structure(lambda t: t[start : start + local], element)

        # A map keeps the cardinality, so Keras knows the steps per epoch.
        return dataset.map(take_rows, num_parallel_calls=tf.data.AUTOTUNE)

    def _shard_jax_dataset(self, dataset):
        # Keras' own multi-process sharding rebatches the dataset, which loses
        # its cardinality: `fit` then counts no steps and warns that the input
        # ran out. The same split is done here, keeping the number of steps.
        import tensorflow as tf

        steps = int(dataset.cardinality())
        global_batch_size = _static_batch_size(dataset)
        if global_batch_size % self.num_processes:
            raise ValueError(
                "The global batch size must be a multiple of the number of "
                f"processes. Received: global_batch_size={global_batch_size}, "
                f"num_processes={self.num_processes}"
            )
        # Local batch r of global batch k is rebatched element k * R + r.
        local = dataset.rebatch(global_batch_size // self.num_processes).shard(
            self.num_processes, self.process_index
        )
        if steps >= 0:
            local = local.apply(tf.data.experimental.assert_cardinality(steps))
        # Each process now feeds its own rows; Keras assembles the global batch.
        self.distribution.auto_shard_dataset = False
        return local.prefetch(tf.data.AUTOTUNE)

    def __repr__(self):
        return (
            f"<DataParallelScope backend={self.backend} "
            f"num_replicas={self.num_replicas} num_processes={self.num_processes} "
            f"process_index={self.process_index}>"
        )


def data_parallel(devices=None, multi_worker=None, timeout=1800):
    """Sets up data-parallel training with each backend's own machinery.

    IMSVD's joint distribution is estimated over the global batch, and its loss
    and gradients equal those of one device on the concatenated global batch:

    - **JAX**: `keras.distribution.DataParallel` over `devices` (all by
      default). `compute_loss` sees the global batch, sharded over the devices,
      and XLA inserts the collectives. With `multi_worker`,
      `keras.distribution.initialize()` runs first (one process per host).
    - **TensorFlow**: `tf.distribute.MirroredStrategy(devices)`, or
      `MultiWorkerMirroredStrategy` with `multi_worker` (from `TF_CONFIG`).
      The model must be created and compiled inside the scope; `compute_loss`
      runs per replica and the soft codes are all-gathered with gradients.
      (Keras 3.15's `fit` fails on dict inputs under
      `MultiWorkerMirroredStrategy`, keras-team/keras#20329.)
    - **PyTorch**: `torch.distributed` from the variables that `torchrun` sets
      (`WORLD_SIZE`, `RANK`, `MASTER_ADDR`, ...), with NCCL on GPU (one device
      per process, `LOCAL_RANK`) and gloo on CPU. The soft codes are gathered
      with autograd; pass `SynchronizeReplicas()` to `fit` to average the
      gradients and start from rank 0's weights, and feed each process its own
      shard with `distribute_dataset`. Without `torchrun` (no `WORLD_SIZE`)
      the run is single-process.

    BatchNorm uses the statistics of the global batch, as the published
    code's `torch.nn.SyncBatchNorm`, in the layers that are
    `keras_imsvd.layers.SyncBatchNormalization` (those of
    `keras_imsvd.backbones` and of the default projector) on every backend,
    and in every BatchNorm layer on JAX.

    The same script then runs on one device or many: build the dataset with the
    global batch size, pass it through `distribute_dataset`, and scale the
    learning rate with the global batch (`base_lr * global_batch_size / 256`).

    Args:
        devices: JAX or TensorFlow devices to use, such as
            `["gpu:0", "gpu:1"]`. Defaults to `None`: all local devices.
        multi_worker: Whether several processes (hosts) train together; JAX
            then calls `keras.distribution.initialize()` and TensorFlow uses
            `MultiWorkerMirroredStrategy`. Defaults to `None`: detected from
            `KERAS_DISTRIBUTION_NUM_PROCESSES` (JAX) or `TF_CONFIG`
            (TensorFlow); torchrun needs no flag.
        timeout: Seconds a `torch.distributed` collective waits for the other
            processes before failing. Defaults to `1800`.

    Returns:
        A `DataParallelScope`, to be used as a context manager.

    Example:

    ```python
    import keras, keras_imsvd
    with keras_imsvd.distribute.data_parallel() as replicas:
        model = keras_imsvd.IMSVDModel(keras_imsvd.backbones.resnet18_cifar())
        model.compile(optimizer=keras.optimizers.SGD(0.1 * 512 / 256))
        model.fit(
            replicas.distribute_dataset(dataset),  # batched by 512, globally
            epochs=800,
            callbacks=[keras_imsvd.distribute.SynchronizeReplicas()],
        )
    ```
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or (timeout <= 0)
    ):
        raise ValueError(
            f"`timeout` must be a number > 0. Received: timeout={timeout!r}"
        )
    return DataParallelScope(
        devices=devices, multi_worker=multi_worker, timeout=timeout
    )


def _static_batch_size(dataset):
    """The batch size of a `tf.data.Dataset` batched with a static size."""
    import tensorflow as tf

    sizes = {
        spec.shape[0] if spec.shape.rank else None
        for spec in tf.nest.flatten(dataset.element_spec)
    }
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            "distribute_dataset() needs a dataset batched with a static global "
            "batch size: batch it with `drop_remainder=True`. Received: "
            f"element_spec={dataset.element_spec}"
        )
    return sizes.pop()
