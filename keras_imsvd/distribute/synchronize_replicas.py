"""`SynchronizeReplicas`: gradient averaging for `fit` under torch.distributed."""

import keras

from keras_imsvd.distribute import _torch


@keras.saving.register_keras_serializable(package="keras_imsvd")
class SynchronizeReplicas(keras.callbacks.Callback):
    """Keeps the PyTorch processes of a data-parallel `fit` in step.

    Keras' PyTorch `fit` does not wrap the model in `DistributedDataParallel`,
    so under `torch.distributed` (started by `torchrun`, set up by
    `keras_imsvd.distribute.data_parallel()`) this callback does its work:

    - at the start of training, every process takes rank 0's weights (and
      optimizer variables, when the optimizer is already built);
    - every step, each trainable variable's gradient is all-reduced and
      averaged over the processes, as soon as autograd has accumulated it and
      before the optimizer applies it (one all-reduce per variable, overlapping
      the rest of the backward pass on GPU; there is no bucketing);
    - at the end of each epoch, the floating non-trainable weights (BatchNorm
      moving statistics, which each process estimates from its own samples
      unless the layers are `keras_imsvd.layers.SyncBatchNormalization`) are
      averaged, so that all processes hold the same model.

    Why averaging is exact: every process computes the same global loss from
    the all-gathered soft codes, and the backward pass of the gather sums each
    process's share over all processes, so the gradient of a process is
    `world_size` times the gradient through its own samples; the average over
    processes is then the single-device gradient of the global batch (and
    regularization losses, computed alike by all processes, keep their weight).

    On JAX and TensorFlow, and on a single process, the callback does nothing,
    so one training script serves every backend.

    Args:
        average_moving_statistics: Whether to average the floating
            non-trainable weights at the end of each epoch. Defaults to
            `True`.

    Example:

    ```python
    with keras_imsvd.distribute.data_parallel() as replicas:
        model = keras_imsvd.IMSVDModel(encoder)
        model.compile(optimizer="sgd")
        model.fit(
            replicas.distribute_dataset(dataset),
            callbacks=[keras_imsvd.distribute.SynchronizeReplicas()],
        )
    ```
    """

    def __init__(self, average_moving_statistics=True):
        super().__init__()
        self.average_moving_statistics = average_moving_statistics
        self._handles = []

    def _active(self):
        return keras.backend.backend() == "torch" and _torch.world_size() > 1

    def on_train_begin(self, logs=None):
        if not self._active():
            return
        import torch.distributed as dist

        # Weights only: random layers keep their own seed state.
        variables = list(self.model.weights)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and optimizer.built:
            variables += list(optimizer.variables)
        try:
            for variable in variables:
                dist.broadcast(variable.value.data, src=0)
        except RuntimeError as error:
            raise _torch.collective_error(error) from error
        world_size = _torch.world_size()

        def average(parameter):
            try:
                dist.all_reduce(parameter.grad)
            except RuntimeError as error:
                raise _torch.collective_error(error) from error
            parameter.grad.div_(world_size)

        for variable in self.model.trainable_variables:
            self._handles.append(
                variable.value.register_post_accumulate_grad_hook(average)
            )
        _torch.start_gradient_averaging()

    def on_epoch_end(self, epoch, logs=None):
        if not (self._active() and self.average_moving_statistics):
            return
        import torch.distributed as dist

        world_size = _torch.world_size()
        try:
            for variable in self.model.non_trainable_weights:
                if "float" in keras.backend.standardize_dtype(variable.dtype):
                    value = variable.value.data
                    dist.all_reduce(value)
                    value.div_(world_size)
        except RuntimeError as error:
            raise _torch.collective_error(error) from error

    def on_train_end(self, logs=None):
        if not self._handles:
            return
        for handle in self._handles:
            handle.remove()
        self._handles = []
        _torch.stop_gradient_averaging()

    def get_config(self):
        return {"average_moving_statistics": self.average_moving_statistics}
