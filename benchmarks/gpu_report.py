"""The GPU results: merges the suite's files, and writes the GPU section of RESULTS.md.

`gpu_suite.sh` calls `merge` (its steps' files into one `gpu_suite.json`) and
`report` (the section as Markdown, beside it). After the run, the section goes
into `benchmarks/RESULTS.md` between its markers, replacing an earlier one:

    python benchmarks/gpu_report.py report gpu_suite.json \\
        --results benchmarks/RESULTS.md

A second, short run (`GPU_SUITE_STEPS=train_imagenet`, say) is combined with
the first: `report first/gpu_suite.json second/gpu_suite.json`.

Each target is reported as met, missed or not measured:

- loss forward + backward at least 3x the published formulation on JAX, and
  2.5x with `torch.compile`, at both published shapes;
- the CIFAR-10 train step, at equal precision, at least 1.3x the published
  PyTorch step's images per second on the best backend and 0.9x on each;
- the IMSVD overhead over a supervised step at most 10% at the ImageNet
  settings (ResNet-50, projector 8192-8160, b=80, batch 256, 224 px);
- the views are not the bottleneck: a pretraining with the views drawn on the
  device runs at least 0.9x the images per second of the train step alone
  (same backend, batch and precision).
"""

import argparse
import datetime
import glob
import importlib.metadata
import json
import os
import re
import statistics
import sys

START = "<!-- gpu-results:start -->"
END = "<!-- gpu-results:end -->"
LOSS_TARGETS = {"jax_jit": 3.0, "torch_compile": 2.5}
CIFAR_BEST, CIFAR_EACH = 1.3, 0.9
OVERHEAD_LIMIT = 10.0
VIEWS_RATIO = 0.9
IMAGENET = {"batch_size": 256, "image_size": 224}
MET, MISSED, NOT_MEASURED = "met", "missed", "not measured"
_BACKEND_NAMES = {"jax": "JAX", "torch": "PyTorch", "tensorflow": "TensorFlow"}
_TF_REASON = "TensorFlow is not installed on this machine"


# -- merge ------------------------------------------------------------------


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _tail(path, size=1500):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-size:]
    except OSError:
        return None


_STEP_LINE = re.compile(r"(\d+)/(\d+) - \S+ - ([\d.]+)(us|ms|s)/step")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_KNN_LINE = re.compile(r"val_knn_accuracy: ([\d.]+)")


def epoch_step_seconds(log_text):
    """Seconds per step of each epoch, from Keras' `verbose=2` lines."""
    return [
        float(value) * _UNITS[unit]
        for _, _, value, unit in _STEP_LINE.findall(log_text or "")
    ]


def pretrain_summary(run_dir, log_path):
    """Images per second (epochs between the first and the last) and kNN
    accuracy of one pretraining."""
    metrics = _read_json(os.path.join(run_dir, "metrics.json"))
    log_text = _tail(log_path, size=10**6) or ""
    steps = epoch_step_seconds(log_text)
    summary = {"epoch_step_s": steps, "metrics_found": metrics is not None}
    # A run stopped by its time box during the evaluation has written its
    # settings (config.json) and logged its epochs, but no metrics.json.
    config = (metrics or {}).get("config") or (
        _read_json(os.path.join(run_dir, "config.json")) or {}
    )
    batch = config.get("batch_size")
    summary["batch_size"] = batch
    summary["mixed_precision"] = config.get("mixed_precision")
    summary["augment_on"] = config.get("augment_on")
    if batch and steps:
        # The first epoch includes compilation and the last one the kNN
        # monitor (it runs before Keras' progress bar closes the epoch): the
        # epochs between them, else the last one.
        summary["images_per_s"] = batch / statistics.median(steps[1:-1] or steps[-1:])
    monitored = _KNN_LINE.findall(log_text)
    if monitored:
        # The kNN monitor's last held-out accuracy (during training).
        summary["knn"] = float(monitored[-1])
    if metrics:
        learned = metrics.get("results", {}).get("IMSVD (learned)", {})
        summary["knn"] = learned.get("knn", summary.get("knn"))
        summary["linear_probe"] = learned.get("linear_probe")
        summary["epochs_trained"] = metrics.get("epochs_trained")
        summary["train_seconds"] = metrics.get("train_seconds")
        summary["final_loss"] = metrics.get("final_loss")
    return summary


def _versions():
    out = {"python": sys.version.split()[0]}
    for name in ("keras", "jax", "jaxlib", "torch", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def merge(work, device, suite_seconds=None, cpu_smoke=False):
    """One dictionary of everything the suite measured in `work`."""
    steps = {}
    try:
        with open(os.path.join(work, "steps.jsonl")) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    steps[row["name"]] = row
    except OSError:
        pass
    for row in steps.values():
        if row.get("status") not in ("ok", "skipped") and row.get("log"):
            row["log_tail"] = _tail(row["log"])
    train_rows = []
    for name in ("train_cifar", "train_imagenet"):
        train_rows += _read_json(os.path.join(work, f"{name}.json")) or []
    pretrain = {}
    for backend in ("jax", "torch"):
        if f"pretrain_{backend}" in steps:
            pretrain[backend] = pretrain_summary(
                os.path.join(work, f"pretrain_{backend}"),
                os.path.join(work, f"pretrain_{backend}.log"),
            )
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "device": device,
        "cpu_smoke": cpu_smoke,
        "suite_seconds": suite_seconds,
        "versions": _versions(),
        "steps": steps,
        "devices": _read_json(os.path.join(work, "devices.json")),
        # loss_speed.py names its --quick output loss_speed_quick.json.
        "loss_speed": next(
            filter(None, map(_read_json, sorted(glob.glob(f"{work}/loss*.json")))),
            None,
        ),
        "train_step": train_rows,
        "pretrain": pretrain,
    }


def combine(suites):
    """One suite from several runs (a later run's results win): a second, short
    run can redo the steps that the first one did not finish."""
    out = dict(suites[0])
    rows = {}
    for suite in suites:
        for row in suite.get("train_step") or []:
            key = (row.get("setting"), row.get("backend"), row.get("precision"))
            if "error" not in row or key not in rows:
                rows[key] = row
    out["train_step"] = list(rows.values())
    out["steps"], out["pretrain"] = {}, {}
    for suite in suites[1:]:
        for key in ("devices", "loss_speed"):
            if suite.get(key):
                out[key] = suite[key]
        if suite.get("date"):
            out["date"] = f"{out.get('date')} and {suite['date']}"
    for index, suite in enumerate(suites):
        for name, step in (suite.get("steps") or {}).items():
            out["steps"][name if index == 0 else f"{name} (run {index + 1})"] = step
        for backend, run in (suite.get("pretrain") or {}).items():
            if run.get("images_per_s") or backend not in out["pretrain"]:
                out["pretrain"][backend] = run
    return out


# -- targets ----------------------------------------------------------------


def _verdict(value, passes):
    if value is None:
        return NOT_MEASURED
    return MET if passes(value) else MISSED


def _all(verdicts):
    """met if every part is met, missed if any is missed, else not measured."""
    if not verdicts or all(v == NOT_MEASURED for v in verdicts):
        return NOT_MEASURED
    if MISSED in verdicts:
        return MISSED
    return MET if all(v == MET for v in verdicts) else NOT_MEASURED


def loss_rows(suite):
    """One row per backend process, shape and method: times and speed-up."""
    timing = (suite.get("loss_speed") or {}).get("timing", {})
    rows = []
    for key, result in timing.items():
        backend, shape = key.split(" ", 1)
        if "error" in result:
            rows.append({"backend": backend, "shape": shape, "error": True})
            continue
        methods = result["methods"]
        base = methods["baseline"]["median_s"]
        for name, row in methods.items():
            if name == "baseline":
                continue
            rows.append(
                {
                    "backend": backend,
                    "shape": shape,
                    "method": name,
                    "median_ms": row["median_s"] * 1e3,
                    "baseline_ms": base * 1e3,
                    "speed_up": base / row["median_s"],
                    "device": result.get("device"),
                }
            )
    return rows


def loss_targets(suite):
    rows = loss_rows(suite)
    out = {}
    for method, target in LOSS_TARGETS.items():
        found = [r for r in rows if r.get("method") == method]
        verdicts = [_verdict(r["speed_up"], lambda v, t=target: v >= t) for r in found]
        out[method] = {
            "target": target,
            "speed_ups": {r["shape"]: r["speed_up"] for r in found},
            "verdict": _all(verdicts),
        }
    return out


def _rows(suite, setting, precision=None):
    return [
        r
        for r in suite.get("train_step", [])
        if r.get("setting") == setting
        and "error" not in r
        and (precision is None or r.get("precision") == precision)
    ]


def cifar_targets(suite):
    """Per precision: each backend's IMSVD step over the published step."""
    out = {}
    for precision in ("float32", "mixed"):
        rows = _rows(suite, "cifar", precision)
        published = next(
            (
                r["published_images_per_s"]
                for r in rows
                if "published_images_per_s" in r
            ),
            None,
        )
        ratios = {
            r["backend"]: r["imsvd_images_per_s"] / published
            for r in rows
            if published and "imsvd_images_per_s" in r
        }
        best = max(ratios.values()) if ratios else None
        out[precision] = {
            "published_images_per_s": published,
            "imsvd_images_per_s": {
                r["backend"]: r.get("imsvd_images_per_s") for r in rows
            },
            "ratios": ratios,
            "best": _verdict(best, lambda v: v >= CIFAR_BEST),
            "each": _all(
                [_verdict(v, lambda v: v >= CIFAR_EACH) for v in ratios.values()]
            ),
        }
    out["best"] = _all([out[p]["best"] for p in ("float32", "mixed")])
    out["each"] = _all([out[p]["each"] for p in ("float32", "mixed")])
    return out


def overhead_targets(suite):
    out = {"backends": {}}
    for row in _rows(suite, "imagenet"):
        overhead = row.get("overhead_percent")
        settings = {k: row.get(k) for k in IMAGENET}
        if settings != IMAGENET:
            verdict = NOT_MEASURED
        else:
            verdict = _verdict(overhead, lambda v: v <= OVERHEAD_LIMIT)
        out["backends"][f"{row['backend']} {row['precision']}"] = {
            "overhead_percent": overhead,
            "batch_size": row.get("batch_size"),
            "image_size": row.get("image_size"),
            "verdict": verdict,
        }
    out["verdict"] = _all([b["verdict"] for b in out["backends"].values()])
    return out


def views_targets(suite):
    """Each backend's pretraining images/s over its mixed-precision CIFAR step."""
    out = {"backends": {}}
    steps = {r["backend"]: r for r in _rows(suite, "cifar", "mixed")}
    for backend, run in (suite.get("pretrain") or {}).items():
        step = steps.get(backend, {})
        pretrain_rate = run.get("images_per_s")
        step_rate = step.get("imsvd_images_per_s")
        same_batch = run.get("batch_size") == step.get("batch_size")
        ratio = None
        if pretrain_rate and step_rate and same_batch:
            ratio = pretrain_rate / step_rate
        out["backends"][backend] = {
            "pretrain_images_per_s": pretrain_rate,
            "train_step_images_per_s": step_rate,
            "ratio": ratio,
            "knn": run.get("knn"),
            "verdict": _verdict(ratio, lambda v: v >= VIEWS_RATIO),
        }
    out["verdict"] = _all([b["verdict"] for b in out["backends"].values()])
    return out


def targets(suite):
    return {
        "loss": loss_targets(suite),
        "cifar": cifar_targets(suite),
        "overhead": overhead_targets(suite),
        "views": views_targets(suite),
    }


# -- Markdown ---------------------------------------------------------------


def _num(value, fmt="{:.1f}"):
    return "" if value is None else fmt.format(value)


def _x(value):
    return _num(value, "{:.2f}x")


def _tensorflow_note(suite):
    report = ((suite.get("devices") or {}).get("backends") or {}).get("tensorflow")
    if report and report.get("status") == "not measured":
        return f"not measured: {report.get('reason', _TF_REASON)}"
    if report and report.get("status") == "measured":
        return f"devices only ({report.get('keras_tensor_device')}); not benchmarked"
    return f"not measured: {_TF_REASON}"


def _targets_table(t, tf_note):
    loss, cifar = t["loss"], t["cifar"]
    rows = [
        (
            "loss fwd+bwd, JAX, >= 3x the published formulation",
            ", ".join(f"{k}: {_x(v)}" for k, v in loss["jax_jit"]["speed_ups"].items()),
            loss["jax_jit"]["verdict"],
        ),
        (
            "loss fwd+bwd, torch.compile, >= 2.5x the published formulation",
            ", ".join(
                f"{k}: {_x(v)}" for k, v in loss["torch_compile"]["speed_ups"].items()
            ),
            loss["torch_compile"]["verdict"],
        ),
        (
            "CIFAR-10 train step, best backend >= 1.3x the published step",
            "; ".join(
                f"{p}: {_x(max(cifar[p]['ratios'].values()))}"
                for p in ("float32", "mixed")
                if cifar[p]["ratios"]
            ),
            cifar["best"],
        ),
        (
            "CIFAR-10 train step, each backend >= 0.9x the published step",
            "; ".join(
                f"{p} {b}: {_x(v)}"
                for p in ("float32", "mixed")
                for b, v in cifar[p]["ratios"].items()
            ),
            cifar["each"],
        ),
        (
            "IMSVD overhead over a supervised step <= 10% (ImageNet, batch 256)",
            "; ".join(
                f"{k}: {_num(v['overhead_percent'], '{:+.0f}%')}"
                for k, v in t["overhead"]["backends"].items()
            ),
            t["overhead"]["verdict"],
        ),
        (
            "views on the device not the bottleneck (pretraining >= 0.9x the step)",
            "; ".join(
                f"{k}: {_x(v['ratio'])}"
                for k, v in t["views"]["backends"].items()
                if v["ratio"] is not None
            ),
            t["views"]["verdict"],
        ),
        ("TensorFlow on the GPU", "", tf_note),
    ]
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return lines


def _loss_table(suite):
    lines = [
        "| backend process | shape (N,D,b) | method | median (ms) | published "
        "formulation, same process (ms) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for r in loss_rows(suite):
        if r.get("error"):
            lines.append(f"| {r['backend']} | {r['shape']} | error: see JSON | | | |")
            continue
        lines.append(
            f"| {r['backend']} | {r['shape']} | {r['method']} | "
            f"{r['median_ms']:.2f} | {r['baseline_ms']:.2f} | {_x(r['speed_up'])} |"
        )
    return lines


def _train_table(suite, setting):
    lines = [
        "| backend | precision | batch | size | IMSVD (img/s) | supervised (img/s) "
        "| published PyTorch (img/s) | IMSVD overhead |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in suite.get("train_step", []):
        if r.get("setting") != setting:
            continue
        if "error" in r:
            last = (r["error"].strip().splitlines() or [""])[-1][:80]
            lines.append(
                f"| {r['backend']} | {r.get('precision', '')} | error: {last} "
                "| | | | | |"
            )
            continue
        mixed = r.get("precision") == "mixed" and r.get("policy")
        policy = f" ({r['policy']})" if mixed else ""
        lines.append(
            f"| {r['backend']} | {r['precision']}{policy} | "
            f"{r['batch_size']} | {r['image_size']} | "
            f"{_num(r.get('imsvd_images_per_s'))} | "
            f"{_num(r.get('supervised_images_per_s'))} | "
            f"{_num(r.get('published_images_per_s'))} | "
            f"{_num(r.get('overhead_percent'), '{:+.1f}%')} |"
        )
    return lines


def _pretrain_table(t):
    lines = [
        "| backend | pretraining, middle epochs (img/s) | train step alone, mixed "
        "(img/s) | ratio | kNN accuracy |",
        "|---|---|---|---|---|",
    ]
    for backend, v in t["views"]["backends"].items():
        lines.append(
            f"| {backend} | {_num(v['pretrain_images_per_s'])} | "
            f"{_num(v['train_step_images_per_s'])} | {_x(v['ratio'])} | "
            f"{_num(v['knn'], '{:.3f}')} |"
        )
    return lines


def _steps_line(suite):
    return ", ".join(
        f"{name} {row.get('status')}"
        + (f" ({row['seconds']} s)" if "seconds" in row else "")
        for name, row in (suite.get("steps") or {}).items()
    )


def section(suite):
    """The GPU section of RESULTS.md, markers included."""
    t = targets(suite)
    versions = suite.get("versions") or {}
    smoke = " (CPU smoke run: not GPU figures)" if suite.get("cpu_smoke") else ""
    lines = [
        START,
        "## GPU",
        "",
        f"Measured on {suite.get('date')} on {suite.get('device')}{smoke} by "
        "`bash benchmarks/gpu_suite.sh` (Keras "
        f"{versions.get('keras')}, JAX {versions.get('jax')}, PyTorch "
        f"{versions.get('torch')}, Python {versions.get('python')}); written by "
        "`benchmarks/gpu_report.py` from its `gpu_suite.json`. Steps: "
        f"{_steps_line(suite)}.",
        "",
        *_targets_table(t, _tensorflow_note(suite)),
        "",
        "### Loss forward + backward",
        "",
        *_loss_table(suite),
        "",
        "### CIFAR-10 train step (ResNet-18, projector 1024-1024-1024, b=32)",
        "",
        *_train_table(suite, "cifar"),
        "",
        "### ImageNet train step (ResNet-50, projector 8192-8160, b=80)",
        "",
        *_train_table(suite, "imagenet"),
        "",
        "### CIFAR-10 pretraining with the views on the device",
        "",
        *_pretrain_table(t),
        END,
    ]
    return "\n".join(lines) + "\n"


def replace_section(text, new_section):
    """`text` with its GPU section replaced by `new_section` (appended if none)."""
    start, end = text.find(START), text.find(END)
    if start != -1 and end > start:
        end += len(END)
        if text[end : end + 1] == "\n":
            end += 1
        return text[:start] + new_section + text[end:]
    return text.rstrip("\n") + "\n\n" + new_section


# -- command line -----------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    merge_parser = commands.add_parser("merge", help="one JSON from the suite's files")
    merge_parser.add_argument("--work", required=True)
    merge_parser.add_argument("--device", default="unknown")
    merge_parser.add_argument("--suite-seconds", type=float, default=None)
    merge_parser.add_argument("--cpu-smoke", action="store_true")
    merge_parser.add_argument("--output", required=True)
    report = commands.add_parser("report", help="the GPU section of RESULTS.md")
    report.add_argument(
        "suite_json", nargs="+", help="the suite's JSON; several runs are combined"
    )
    report.add_argument("--markdown", help="write the section to this file")
    report.add_argument("--results", help="replace the section in this RESULTS.md")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.command == "merge":
        suite = merge(args.work, args.device, args.suite_seconds, args.cpu_smoke)
        suite["targets"] = targets(suite)
        with open(args.output, "w") as f:
            json.dump(suite, f, indent=2)
        print(f"merged into {args.output}")
        return
    suites = [_read_json(path) for path in args.suite_json]
    if None in suites:
        unread = args.suite_json[suites.index(None)]
        raise SystemExit(f"cannot read the suite's JSON {unread}")
    suite = combine(suites)
    text = section(suite)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.results:
        with open(args.results) as f:
            results = f.read()
        with open(args.results, "w") as f:
            f.write(replace_section(results, text))
    print(text)


if __name__ == "__main__":
    main()
