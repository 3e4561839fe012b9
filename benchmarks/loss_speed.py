"""Forward + backward time of `joint_cross_entropy` on each Keras backend.

The library loss is compiled the way a user would: `jax.jit(jax.value_and_grad)`
on JAX, `tf.function(jit_compile=True)` around a `GradientTape` on TensorFlow,
and plain eager code and `torch.compile` on PyTorch. Gradients are taken with
respect to both views' soft codes. The baseline is an eager PyTorch
transcription of the published formulation (`published_loss.py`).

Each backend runs in its own process (`KERAS_BACKEND` is set before Keras is
imported). Inside it, the baseline and the library calls are timed in
alternating rounds, so each ratio compares numbers measured side by side. Peak
memory is measured apart, in one fresh process per method and shape, as the
growth of the process's peak resident set (`ru_maxrss`) over three calls; for
compiled methods it includes the compiler's own working memory.

With `--device cuda` (or `auto` where a GPU is visible), the PyTorch tensors,
the baseline included, sit on the GPU and each timed call waits for the device
(`torch.cuda.synchronize`); JAX places its arrays on the matching platform.
Peak memory is then not measured (pass `--no-memory`): the resident set of the
host says nothing about the device.

Usage:

    python benchmarks/loss_speed.py --quick
    python benchmarks/loss_speed.py            # the two published shapes
    python benchmarks/loss_speed.py --backends jax,torch --device cuda --no-memory
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_FULL_SHAPES = ((256, 8160, 80), (512, 1024, 32))
_QUICK_SHAPES = ((64, 1024, 32), (128, 512, 16))
_METHODS = {
    "jax": ("jax_jit",),
    "tensorflow": ("tf_xla",),
    "torch": ("torch_eager", "torch_compile"),
}
_LABELS = {
    "jax_jit": "JAX, jax.jit(value_and_grad)",
    "tf_xla": "TensorFlow, tf.function(jit_compile=True)",
    "torch_eager": "PyTorch eager",
    "torch_compile": "PyTorch, torch.compile",
    "baseline": "baseline (published formulation, torch eager)",
    "matmul_floor": "3 matmuls N x D x D alone (torch)",
}


def soft_codes(n, dim, bin_size, seed):
    """Random soft codes `(N, K, b)`, softmax of normal logits clamped at 1e-8."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, dim // bin_size, bin_size)).astype("float32")
    codes = np.exp(logits - logits.max(axis=-1, keepdims=True))
    codes /= codes.sum(axis=-1, keepdims=True)
    return np.maximum(codes, 1e-8).astype("float32")


def _maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- the timed callables, each returning (loss, grad_1, grad_2) -------------


def make_library_step(method):
    """The library loss with its gradients, compiled as `method` says."""
    from keras_imsvd.losses import joint_cross_entropy

    def loss_fn(p1, p2):
        return joint_cross_entropy(p1, p2)[0]

    if method == "jax_jit":
        import jax

        step = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
        return lambda p1, p2: jax.block_until_ready(step(p1, p2))
    if method == "tf_xla":
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def tf_step(p1, p2):
            with tf.GradientTape() as tape:
                tape.watch([p1, p2])
                loss = loss_fn(p1, p2)
            return loss, tape.gradient(loss, [p1, p2])

        def run(p1, p2):
            loss, grads = tf_step(p1, p2)
            return loss.numpy(), grads[0].numpy(), grads[1].numpy()

        return run
    import torch

    forward = torch.compile(loss_fn) if method == "torch_compile" else loss_fn

    def torch_step(p1, p2):
        p1 = p1.detach().requires_grad_()
        p2 = p2.detach().requires_grad_()
        loss = forward(p1, p2)
        return (loss, *torch.autograd.grad(loss, (p1, p2)))

    return torch_step


def make_baseline_step(num_variables, bin_size, device="cpu"):
    import torch

    sys.path.insert(0, _HERE)
    from published_loss import PublishedJointCrossEntropy

    loss_fn = PublishedJointCrossEntropy(num_variables, bin_size, device=device)

    def step(p1, p2):
        p1 = p1.detach().requires_grad_()
        p2 = p2.detach().requires_grad_()
        loss = loss_fn(p1, p2)
        return (loss, *torch.autograd.grad(loss, (p1, p2)))

    return step


def make_matmul_floor(n, dim, device="cpu"):
    """The three `N x D x D` products any exact forward+backward needs."""
    import torch

    upstream = torch.rand(dim, dim, device=device)

    def step(p1, p2):
        a = p1.reshape(n, dim)
        b = p2.reshape(n, dim)
        joint = a.T @ b  # forward: P
        return joint, b @ upstream.T, a @ upstream  # backward: dL/dp1, dL/dp2

    return step


def to_backend(method, array, device="cpu"):
    """`array` as the method's tensor, on `device` (`"cpu"` or `"cuda"`)."""
    if method == "jax_jit":
        import jax

        platform = "gpu" if device == "cuda" else "cpu"
        return jax.device_put(array, jax.devices(platform)[0])
    if method == "tf_xla":
        import tensorflow as tf

        return tf.constant(array)
    import torch

    return torch.from_numpy(array).to(device)


def resolve_device(device):
    """`"cuda"` or `"cpu"`: `auto` is the GPU where PyTorch sees one."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device must be visible to PyTorch. Received: device={device!r} on a "
            "machine where torch.cuda.is_available() is False"
        )
    return device


def _synchronized(step, device):
    """`step` that returns only once the device has finished its work."""
    if device != "cuda":
        return step
    import torch

    def run(*inputs):
        out = step(*inputs)
        torch.cuda.synchronize()
        return out

    return run


def _device_name(device):
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    return "cpu"


def _scalar(x):
    if hasattr(x, "detach"):  # a torch tensor, maybe on the GPU
        x = x.detach().cpu()
    return float(np.asarray(x))


# -- workers ----------------------------------------------------------------


def time_worker(backend, shape, repeats, warmup, device="cpu"):
    """Times the backend's methods beside the baseline, in alternating rounds."""
    import torch

    device = resolve_device(device)
    n, dim, bin_size = shape
    codes = [soft_codes(n, dim, bin_size, seed) for seed in (0, 1)]
    torch_codes = [torch.from_numpy(c).to(device) for c in codes]
    baseline = make_baseline_step(dim // bin_size, bin_size, device)
    steps = {"baseline": (baseline, torch_codes)}
    if backend == "torch":
        steps["matmul_floor"] = (make_matmul_floor(n, dim, device), torch_codes)
    for method in _METHODS[backend]:
        inputs = [to_backend(method, c, device) for c in codes]
        steps[method] = (make_library_step(method), inputs)
    steps = {
        name: (_synchronized(step, device), inputs)
        for name, (step, inputs) in steps.items()
    }
    result = {
        "shape": list(shape),
        "device": device,
        "device_name": _device_name(device),
        "methods": {},
    }
    times = {name: [] for name in steps}
    for name, (step, inputs) in steps.items():
        started = time.perf_counter()
        out = step(*inputs)
        first = time.perf_counter() - started
        for _ in range(warmup - 1):
            step(*inputs)
        result["methods"][name] = {"first_call_s": first}
        if name != "matmul_floor":
            result["methods"][name]["loss"] = _scalar(out[0])
    for _ in range(repeats):
        for name, (step, inputs) in steps.items():
            started = time.perf_counter()
            step(*inputs)
            times[name].append(time.perf_counter() - started)
    for name in steps:
        result["methods"][name]["times_s"] = times[name]
        result["methods"][name]["median_s"] = statistics.median(times[name])
    return result


def memory_worker(backend, method, shape):
    """Peak resident set growth over three calls of one method, in MiB."""
    import torch

    n, dim, bin_size = shape
    codes = [soft_codes(n, dim, bin_size, seed) for seed in (0, 1)]
    if method == "baseline":
        step = make_baseline_step(dim // bin_size, bin_size)
        inputs = [torch.from_numpy(c) for c in codes]
    else:
        step = make_library_step(method)
        inputs = [to_backend(method, c) for c in codes]
    before = _maxrss_mib()
    for _ in range(3):
        step(*inputs)
    result = {"peak_rss_growth_mib": _maxrss_mib() - before}
    if method == "jax_jit":
        import jax

        from keras_imsvd.losses import joint_cross_entropy

        compiled = (
            jax.jit(
                jax.value_and_grad(
                    lambda a, b: joint_cross_entropy(a, b)[0], argnums=(0, 1)
                )
            )
            .lower(*inputs)
            .compile()
        )
        analysis = compiled.memory_analysis()
        if analysis is not None:
            result["xla_temp_mib"] = analysis.temp_size_in_bytes / 2**20
    return result


# -- orchestration ----------------------------------------------------------


def _run(args, env_backend):
    # On a shared machine, libgomp's busy-waiting threads stall PyTorch's
    # parallel regions behind descheduled threads (10x slower medians); passive
    # waiting avoids that and changes nothing when the cores are free.
    env = dict(
        os.environ,
        OMP_WAIT_POLICY="PASSIVE",
        KERAS_BACKEND=env_backend,
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {"error": (proc.stderr or proc.stdout)[-2000:]}


def _shape_arg(shape):
    return ",".join(str(s) for s in shape)


def orchestrate(args):
    shapes = _QUICK_SHAPES if args.quick else _FULL_SHAPES
    repeats = args.repeats or (3 if args.quick else 5)
    report = {"repeats": repeats, "timing": {}, "memory": {}}
    for backend in args.backends:
        for shape in shapes:
            key = f"{backend} {_shape_arg(shape)}"
            print(f"timing {key} ...", flush=True)
            report["timing"][key] = _run(
                [
                    "--time-worker",
                    backend,
                    _shape_arg(shape),
                    "--repeats",
                    str(repeats),
                    "--device",
                    args.device,
                ],
                backend,
            )
            # Written after every process: a run stopped early keeps its rows.
            _write(report, args.output)
    if not args.no_memory:
        for backend in args.backends:
            for method in ("baseline", *_METHODS[backend]):
                if method == "baseline" and backend != "torch":
                    continue
                for shape in shapes:
                    key = f"{method} {_shape_arg(shape)}"
                    print(f"memory {key} ...", flush=True)
                    report["memory"][key] = _run(
                        ["--memory-worker", backend, method, _shape_arg(shape)],
                        backend,
                    )
    _write(report, args.output)
    print(format_report(report, shapes, args.backends))
    print(f"raw results in {args.output}")


def _write(report, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


def format_report(report, shapes, backends):
    """Markdown tables: medians, ratios to the baseline, peak memory."""
    lines = []
    for shape in shapes:
        n, dim, bin_size = shape
        lines += [
            f"\nN={n}, D={dim}, b={bin_size} (K={dim // bin_size})\n",
            "| backend process | method | median (ms) | baseline median in the "
            "same process (ms) | speed-up vs baseline | peak RSS growth (MiB) | "
            "loss |",
            "|---|---|---|---|---|---|---|",
        ]
        for backend in backends:
            timing = report["timing"].get(f"{backend} {_shape_arg(shape)}", {})
            if "error" in timing:
                lines.append(f"| {backend} | error: see JSON | | | | | |")
                continue
            methods = timing["methods"]
            base = methods["baseline"]["median_s"]
            for name, row in methods.items():
                memory_key = f"{name} {_shape_arg(shape)}"
                memory = report["memory"].get(memory_key, {})
                rss = memory.get("peak_rss_growth_mib")
                rss_text = "" if rss is None else f"{rss:.0f}"
                if "xla_temp_mib" in memory:
                    rss_text += f" (XLA temp {memory['xla_temp_mib']:.0f})"
                if name == "baseline" and backend != "torch":
                    rss_text = "see torch"
                loss = row.get("loss")
                lines.append(
                    f"| {backend} | {_LABELS[name]} | {row['median_s'] * 1e3:.1f} | "
                    f"{base * 1e3:.1f} | {base / row['median_s']:.2f}x | "
                    f"{rss_text} | {'' if loss is None else f'{loss:.5f}'} |"
                )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small shapes, 3 repeats (a smoke run)"
    )
    parser.add_argument(
        "--backends",
        default="jax,tensorflow,torch",
        help="comma-separated backends, each run in its own process",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds (default 5, quick 3)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed first calls")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda", "auto"),
        help="where the tensors sit (auto: the GPU where PyTorch sees one)",
    )
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the peak-memory processes"
    )
    parser.add_argument(
        "--output", default=os.path.join(_HERE, "results", "loss_speed.json")
    )
    parser.add_argument("--time-worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in args.backends:
        if backend not in _METHODS:
            parser.error(f"unknown backend {backend!r}; choose from {list(_METHODS)}")
    if args.quick and args.output.endswith("loss_speed.json"):
        args.output = args.output.replace("loss_speed.json", "loss_speed_quick.json")
    return args


def _parse_shape(text):
    return tuple(int(x) for x in text.split(","))


def main(argv=None):
    args = parse_args(argv)
    if args.time_worker:
        backend, shape = args.time_worker
        result = time_worker(
            backend, _parse_shape(shape), args.repeats or 5, args.warmup, args.device
        )
        print("RESULT " + json.dumps(result), flush=True)
    elif args.memory_worker:
        backend, method, shape = args.memory_worker
        result = memory_worker(backend, method, _parse_shape(shape))
        print("RESULT " + json.dumps(result), flush=True)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
