"""torch.distributed pieces shared by the collectives and `SynchronizeReplicas`."""

import warnings

# How many `SynchronizeReplicas` callbacks average gradients now, and whether
# the gather has warned that none does.
_GRADIENT_AVERAGING = {"active": 0, "warned": False}
_GATHER = {}
_ALL_REDUCE = {}


def world_size():
    """The `torch.distributed` world size; `1` outside a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def collective_error(error):
    """The error to raise, from `error`, when a collective fails."""
    return RuntimeError(
        "keras_imsvd: a collective over the "
        f"{world_size()} torch.distributed processes failed; another "
        "process has probably stopped (see its log)."
    )


def start_gradient_averaging():
    """Records that a callback averages the gradients from now on."""
    _GRADIENT_AVERAGING["active"] += 1


def stop_gradient_averaging():
    """Records that a callback has stopped averaging the gradients."""
    _GRADIENT_AVERAGING["active"] -= 1


def _gather_function():
    """An autograd all-gather along axis 0 (built on first use: torch is lazy)."""
    import torch
    import torch.distributed as dist

    # Renamed in torch 2.13; the old names remain, deprecated.
    all_gather_single = getattr(dist, "all_gather_single", None) or (
        dist.all_gather_into_tensor
    )
    reduce_scatter_single = getattr(dist, "reduce_scatter_single", None) or (
        dist.reduce_scatter_tensor
    )

    class AllGather(torch.autograd.Function):
        """Forward: all-gather. Backward: the sum over processes of each slice.

        `torch.distributed.nn.functional.all_gather` is deprecated, and its gloo
        backward scrambles gradients that arrive with permuted strides, as the
        joint matrix's matmul gives them (torch 2.13); this one makes them
        contiguous.
        """

        @staticmethod
        def forward(ctx, x):
            x = x.contiguous()
            world_size = dist.get_world_size()
            gathered = x.new_empty((world_size * x.shape[0],) + tuple(x.shape[1:]))
            try:
                all_gather_single(gathered, x)
            except RuntimeError as error:
                raise collective_error(error) from error
            ctx.rows = x.shape[0]
            return gathered

        @staticmethod
        def backward(ctx, grad):
            rows = ctx.rows
            grad = grad.clone(memory_format=torch.contiguous_format)
            try:
                if not grad.is_cuda or "gloo" in str(dist.get_backend()):
                    # gloo has no reduce-scatter.
                    dist.all_reduce(grad)
                    start = dist.get_rank() * rows
                    return grad[start : start + rows]
                local = grad.new_empty((rows,) + tuple(grad.shape[1:]))
                reduce_scatter_single(local, grad)
            except RuntimeError as error:
                raise collective_error(error) from error
            return local

    return AllGather


def all_gather(x):
    """Concatenates `x` over the processes along axis 0, with autograd."""
    import torch

    if (
        torch.is_grad_enabled()
        and x.requires_grad
        and not _GRADIENT_AVERAGING["active"]
        and not _GRADIENT_AVERAGING["warned"]
    ):
        _GRADIENT_AVERAGING["warned"] = True
        warnings.warn(
            "keras_imsvd: training under torch.distributed without gradient "
            "averaging; every process would drift apart. Pass "
            "`callbacks=[keras_imsvd.distribute.SynchronizeReplicas()]` to "
            "`fit`.",
            stacklevel=3,
        )
    if "function" not in _GATHER:
        _GATHER["function"] = _gather_function()
    return _GATHER["function"].apply(x)


def _all_reduce_function():
    """An autograd all-reduce (sum) (built on first use: torch is lazy)."""
    import torch
    import torch.distributed as dist

    def summed(x):
        x = x.clone(memory_format=torch.contiguous_format)
        try:
            dist.all_reduce(x)
        except RuntimeError as error:
            raise collective_error(error) from error
        return x

    class AllReduce(torch.autograd.Function):
        """Forward: the sum over processes. Backward: the same, of the gradient.

        Every process uses the sum, so the gradient of each process's input is
        the sum over processes of the gradients that reach the output, as in
        `torch.nn.SyncBatchNorm`'s backward. (`torch.distributed.nn.functional`
        offers this, deprecated in torch 2.13.)
        """

        @staticmethod
        def forward(ctx, x):
            return summed(x)

        @staticmethod
        def backward(ctx, grad):
            return summed(grad)

    return AllReduce


def all_reduce_sum(x):
    """Sums `x` over the processes, with autograd."""
    if "function" not in _ALL_REDUCE:
        _ALL_REDUCE["function"] = _all_reduce_function()
    return _ALL_REDUCE["function"].apply(x)
