"""Which device each Keras backend computes on: the first check on a GPU machine.

Each backend runs in its own process (`KERAS_BACKEND` set before Keras is
imported). It reports what the framework sees (`jax.devices()`,
`torch.cuda`, `tf.config`) and where a Keras tensor lands, after one matmul
on it. A backend that is not installed is reported as not measured, with the
reason; one that computes on the CPU fails the check unless `--allow-cpu`.

Usage:

    python benchmarks/gpu_devices.py --output devices.json
    python benchmarks/gpu_devices.py --backends jax,torch --allow-cpu
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

_BACKENDS = ("jax", "torch", "tensorflow")
_MODULES = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}
_NAMES = {"jax": "JAX", "torch": "PyTorch", "tensorflow": "TensorFlow"}


def _framework_view(backend):
    """What the framework itself sees: `(facts, sees_gpu)`."""
    if backend == "jax":
        import jax

        devices = jax.devices()
        facts = {
            "version": jax.__version__,
            "default_backend": jax.default_backend(),
            "devices": [str(d) for d in devices],
        }
        return facts, any(d.platform == "gpu" for d in devices)
    if backend == "torch":
        import torch

        available = torch.cuda.is_available()
        facts = {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cuda_available": available,
            "device_count": torch.cuda.device_count() if available else 0,
            "device_name": torch.cuda.get_device_name() if available else None,
        }
        return facts, available
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    facts = {"version": tf.__version__, "gpus": [g.name for g in gpus]}
    return facts, bool(gpus)


def _tensor_device(tensor):
    if hasattr(tensor, "devices"):  # JAX
        return ",".join(str(d) for d in tensor.devices())
    return str(tensor.device)


def worker(backend):
    """One backend's report: the framework's view and a Keras tensor's device."""
    import keras

    facts, sees_gpu = _framework_view(backend)
    x = keras.ops.ones((64, 64))
    product = keras.ops.matmul(x, x)
    device = _tensor_device(product)
    on_gpu = any(word in device.lower() for word in ("cuda", "gpu"))
    return {
        "status": "measured",
        "framework": facts,
        "keras_backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "keras_tensor_device": device,
        "matmul_check": float(keras.ops.convert_to_numpy(product)[0, 0]) == 64.0,
        "framework_sees_gpu": sees_gpu,
        "keras_on_gpu": on_gpu,
    }


def _run(backend, timeout):
    if importlib.util.find_spec(_MODULES[backend]) is None:
        return {
            "status": "not measured",
            "reason": f"{_NAMES[backend]} is not installed on this machine",
        }
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, os.path.abspath(__file__), "--worker", backend]
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            result["process_seconds"] = round(time.perf_counter() - started, 1)
            return result
    return {"status": "failed", "error": (proc.stderr or proc.stdout)[-2000:]}


def check(backends, allow_cpu=False, timeout=120):
    """`{"backends": {name: report}, "ok": bool, "failures": [...]}`."""
    reports = {backend: _run(backend, timeout) for backend in backends}
    failures = []
    for backend, report in reports.items():
        if report["status"] == "failed":
            failures.append(f"{backend}: {report['error'].strip()[-300:]}")
        elif report["status"] == "measured" and not allow_cpu:
            if not (report["framework_sees_gpu"] and report["keras_on_gpu"]):
                failures.append(
                    f"{backend}: falls back to the CPU (Keras tensor on "
                    f"{report['keras_tensor_device']})"
                )
    return {"backends": reports, "ok": not failures, "failures": failures}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(_BACKENDS))
    parser.add_argument(
        "--allow-cpu", action="store_true", help="report CPU devices, do not fail"
    )
    parser.add_argument("--timeout", type=float, default=120, help="per backend (s)")
    parser.add_argument("--output", default=None, help="JSON file to write")
    parser.add_argument("--worker", choices=_BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in args.backends:
        if backend not in _BACKENDS:
            parser.error(
                f"--backends takes {', '.join(_BACKENDS)}. Received: {backend!r}"
            )
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker)), flush=True)
        return 0
    result = check(args.backends, args.allow_cpu, args.timeout)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
    for backend, report in result["backends"].items():
        where = report.get("keras_tensor_device", report.get("reason", ""))
        print(f"{backend}: {report['status']} {where}".rstrip())
    for failure in result["failures"]:
        print(f"FAILED {failure}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
