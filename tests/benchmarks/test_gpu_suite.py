"""The GPU suite's parts that run on a CPU: flags, the report, the no-GPU exit,
and the published PyTorch step's loss."""

import json
import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import gpu_devices  # noqa: E402
import gpu_report  # noqa: E402
import loss_speed  # noqa: E402
import train_step  # noqa: E402

SUITE = REPO_ROOT / "benchmarks" / "gpu_suite.sh"


# -- flags --------------------------------------------------------------------


def test_train_step_flags():
    args = train_step.parse_args(
        [
            "--precisions",
            "float32, mixed",
            "--models",
            "imsvd,published",
            "--cifar-batch",
            "512",
            "--cifar-width",
            "8",
            "--imagenet-batch",
            "256",
            "--imagenet-size",
            "224",
            "--worker-timeout",
            "90",
            "--output",
            "/nonexistent/x.json",
        ]
    )
    assert args.precisions == ["float32", "mixed"]
    assert args.models == ["imsvd", "published"]
    assert (args.cifar_batch, args.cifar_width) == (512, 8)
    assert (args.imagenet_batch, args.imagenet_size) == (256, 224)
    assert args.worker_timeout == 90.0
    defaults = train_step.parse_args(["--output", "/nonexistent/x.json"])
    assert defaults.precisions == ["float32"]
    assert defaults.models == ["imsvd", "supervised"]
    assert defaults.cifar_width == 64


@pytest.mark.parametrize(
    "argv",
    [
        ["--precisions", "half"],
        ["--models", "imsvd,barlow"],
        ["--cifar-batch", "0"],
        ["--backends", "mxnet"],
    ],
)
def test_train_step_rejects_bad_flags(argv, capsys):
    with pytest.raises(SystemExit):
        train_step.parse_args(argv)
    assert argv[1].split(",")[-1] in capsys.readouterr().err


def test_loss_speed_device_flag():
    assert loss_speed.parse_args([]).device == "cpu"
    assert loss_speed.parse_args(["--device", "cuda"]).device == "cuda"
    assert loss_speed.parse_args(["--device", "auto"]).device == "auto"
    with pytest.raises(SystemExit):
        loss_speed.parse_args(["--device", "tpu"])
    assert loss_speed.resolve_device("cpu") == "cpu"


def test_gpu_devices_flags():
    args = gpu_devices.parse_args(["--backends", "jax,torch", "--allow-cpu"])
    assert args.backends == ["jax", "torch"] and args.allow_cpu
    with pytest.raises(SystemExit):
        gpu_devices.parse_args(["--backends", "jax,mxnet"])


def test_gpu_devices_fails_on_a_cpu_fallback(monkeypatch):
    reports = {
        "jax": {
            "status": "measured",
            "framework_sees_gpu": True,
            "keras_on_gpu": True,
            "keras_tensor_device": "cuda:0",
        },
        "torch": {
            "status": "measured",
            "framework_sees_gpu": False,
            "keras_on_gpu": False,
            "keras_tensor_device": "cpu",
        },
        "tensorflow": {"status": "not measured", "reason": "not installed"},
    }
    monkeypatch.setattr(gpu_devices, "_run", lambda backend, timeout: reports[backend])
    result = gpu_devices.check(["jax", "torch", "tensorflow"])
    assert not result["ok"]
    assert len(result["failures"]) == 1 and result["failures"][0].startswith("torch")
    assert gpu_devices.check(["jax", "tensorflow"])["ok"]
    assert gpu_devices.check(["torch"], allow_cpu=True)["ok"]


# -- the report from a recorded suite -----------------------------------------


def _timing(baseline, **methods):
    rows = {"baseline": {"median_s": baseline}}
    rows.update({name: {"median_s": m} for name, m in methods.items()})
    return {"device": "cuda", "methods": rows}


def _row(backend, setting, precision, batch, size, **rates):
    row = {
        "backend": backend,
        "setting": setting,
        "precision": precision,
        "batch_size": batch,
        "image_size": size,
    }
    row.update({f"{name}_images_per_s": rate for name, rate in rates.items()})
    if "imsvd" in rates and "supervised" in rates:
        # Overhead from the step times, batch / rate.
        row["overhead_percent"] = 100 * (rates["supervised"] / rates["imsvd"] - 1)
    return row


@pytest.fixture
def suite():
    return {
        "date": "2026-12-01 01:40 UTC",
        "device": "NVIDIA H200",
        "versions": {"keras": "3.15.1", "jax": "0.11.2", "torch": "2.11.0"},
        "steps": {"devices": {"status": "ok", "seconds": 12}},
        "devices": {
            "backends": {
                "tensorflow": {
                    "status": "not measured",
                    "reason": "TensorFlow is not installed on this machine",
                }
            }
        },
        "loss_speed": {
            "timing": {
                "jax 256,8160,80": _timing(0.030, jax_jit=0.008),
                "jax 512,1024,32": _timing(0.012, jax_jit=0.005),
                "torch 256,8160,80": _timing(
                    0.030, torch_eager=0.02, torch_compile=0.01
                ),
                "torch 512,1024,32": _timing(
                    0.012, torch_eager=0.01, torch_compile=0.004
                ),
            }
        },
        "train_step": [
            _row("jax", "cifar", "float32", 512, 32, imsvd=1400.0),
            _row("torch", "cifar", "float32", 512, 32, imsvd=950.0, published=1000.0),
            _row("jax", "cifar", "mixed", 512, 32, imsvd=2500.0),
            _row("torch", "cifar", "mixed", 512, 32, imsvd=1700.0, published=2000.0),
            _row("jax", "imagenet", "mixed", 256, 224, imsvd=500.0, supervised=540.0),
            _row("torch", "imagenet", "mixed", 256, 224, imsvd=400.0, supervised=460.0),
            {"backend": "jax", "setting": "imagenet", "error": "timed out"},
        ],
        "pretrain": {
            "jax": {"images_per_s": 2400.0, "batch_size": 512, "knn": 0.41},
            "torch": {"images_per_s": 1000.0, "batch_size": 512, "knn": 0.40},
        },
    }


def test_loss_targets(suite):
    result = gpu_report.loss_targets(suite)
    jax = result["jax_jit"]
    assert jax["speed_ups"]["256,8160,80"] == pytest.approx(0.030 / 0.008)
    assert jax["speed_ups"]["512,1024,32"] == pytest.approx(0.012 / 0.005)
    assert jax["verdict"] == "missed"  # 2.4x at the second shape
    torch = result["torch_compile"]
    assert torch["speed_ups"]["512,1024,32"] == pytest.approx(3.0)
    assert torch["verdict"] == "met"


def test_cifar_targets(suite):
    result = gpu_report.cifar_targets(suite)
    float32 = result["float32"]
    assert float32["ratios"] == pytest.approx({"jax": 1.4, "torch": 0.95})
    assert (float32["best"], float32["each"]) == ("met", "met")
    mixed = result["mixed"]
    assert mixed["ratios"] == pytest.approx({"jax": 1.25, "torch": 0.85})
    assert (mixed["best"], mixed["each"]) == ("missed", "missed")
    assert (result["best"], result["each"]) == ("missed", "missed")


def test_overhead_and_views_targets(suite):
    overhead = gpu_report.overhead_targets(suite)["backends"]
    assert overhead["jax mixed"]["overhead_percent"] == pytest.approx(8.0)
    assert overhead["jax mixed"]["verdict"] == "met"
    assert overhead["torch mixed"]["overhead_percent"] == pytest.approx(15.0)
    assert gpu_report.overhead_targets(suite)["verdict"] == "missed"
    suite["train_step"][5]["batch_size"] = 8  # not the ImageNet settings
    assert gpu_report.overhead_targets(suite)["verdict"] == "not measured"
    suite["train_step"][5]["overhead_percent"] = 9.0
    suite["train_step"][5]["batch_size"] = 256
    assert gpu_report.overhead_targets(suite)["verdict"] == "met"
    views = gpu_report.views_targets(suite)
    assert views["backends"]["jax"]["ratio"] == pytest.approx(2400 / 2500)
    assert views["backends"]["jax"]["verdict"] == "met"
    assert views["backends"]["torch"]["ratio"] == pytest.approx(1000 / 1700)
    assert views["verdict"] == "missed"


def test_nothing_measured_is_not_measured():
    empty = gpu_report.targets({})
    assert empty["loss"]["jax_jit"]["verdict"] == "not measured"
    assert empty["cifar"]["best"] == "not measured"
    assert empty["overhead"]["verdict"] == "not measured"
    assert empty["views"]["verdict"] == "not measured"
    text = gpu_report.section({})
    assert "not measured: TensorFlow is not installed on this machine" in text


def test_section_rows(suite):
    text = gpu_report.section(suite)
    assert text.startswith(gpu_report.START) and text.rstrip().endswith(gpu_report.END)
    assert "NVIDIA H200" in text and "2026-12-01 01:40 UTC" in text
    lines = text.splitlines()
    jax_loss = next(line for line in lines if line.startswith("| loss fwd+bwd, JAX"))
    assert jax_loss.endswith("| missed |") and "3.75x" in jax_loss
    assert "| TensorFlow on the GPU |  | not measured: TensorFlow is not " in text
    assert "| torch | mixed | 256 | 224 | 400.0 | 460.0 |  | +15.0% |" in text


def test_results_section_is_replaced_in_place(suite, tmp_path):
    results = tmp_path / "RESULTS.md"
    before, after = "# Results\n\nCPU figures.\n", "\n## Later section\n\nkept\n"
    stale = f"{gpu_report.START}\n## GPU\n\nold numbers\n{gpu_report.END}\n"
    results.write_text(before + "\n" + stale + after)
    suite_json = tmp_path / "gpu_suite.json"
    suite_json.write_text(json.dumps(suite))
    command = ["report", str(suite_json), "--results", str(results)]
    gpu_report.main(command)
    once = results.read_text()
    assert once.startswith(before) and once.endswith(after)
    assert "old numbers" not in once and once.count(gpu_report.START) == 1
    assert gpu_report.section(suite) in once
    gpu_report.main(command)
    assert results.read_text() == once


def test_section_is_appended_where_there_is_none(suite):
    text = gpu_report.replace_section("# Results\n", gpu_report.section(suite))
    assert text.startswith("# Results\n\n" + gpu_report.START)
    assert gpu_report.replace_section(text, gpu_report.section(suite)) == text


def test_merge_reads_the_suite_files(tmp_path):
    work = tmp_path
    steps = [
        {"name": "train_cifar", "status": "ok", "rc": 0, "seconds": 50},
        {"name": "pretrain_jax", "status": "timed out", "rc": 124, "log": "x"},
    ]
    (work / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    rows = [_row("jax", "cifar", "mixed", 512, 32, imsvd=2000.0)]
    (work / "train_cifar.json").write_text(json.dumps(rows))
    run = work / "pretrain_jax"
    run.mkdir()
    metrics = {
        "config": {"batch_size": 512},
        "results": {"IMSVD (learned)": {"knn": 0.375, "linear_probe": 0.4}},
        "epochs_trained": 3,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    (work / "pretrain_jax.log").write_text(
        "Epoch 1/3\n88/88 - 40s - 450ms/step - loss: -1.0\n"
        "Epoch 2/3\n88/88 - 9s - 105ms/step - loss: -2.0\n"
        "Epoch 3/3\n88/88 - 8s - 0.1s/step - loss: -2.5\n"
    )
    suite = gpu_report.merge(str(work), "NVIDIA H200", 400.0)
    assert suite["train_step"] == rows
    summary = suite["pretrain"]["jax"]
    assert summary["epoch_step_s"] == pytest.approx([0.45, 0.105, 0.1])
    assert summary["images_per_s"] == pytest.approx(512 / 0.105)  # epoch 2
    assert summary["knn"] == 0.375
    assert suite["steps"]["pretrain_jax"]["status"] == "timed out"
    assert gpu_report.views_targets(suite)["backends"]["jax"]["ratio"] == (
        pytest.approx(512 / 0.105 / 2000.0)
    )


def test_a_pretraining_stopped_in_its_evaluation_keeps_batch_and_knn(tmp_path):
    # The time box ended the run after its epochs, before metrics.json: the
    # batch comes from config.json and the kNN from the monitor's last line.
    run = tmp_path / "pretrain_torch"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"batch_size": 256}))
    log = tmp_path / "pretrain_torch.log"
    log.write_text(
        "Epoch 1/3\n87/87 - 21s - 238ms/step - loss: -4.2 - val_knn_accuracy: 0.3210\n"
        "Epoch 2/3\n87/87 - 16s - 180ms/step - loss: -4.5\n"
        "Epoch 3/3\n87/87 - 17s - 194ms/step - loss: -4.7 - val_knn_accuracy: 0.3492\n"
    )
    summary = gpu_report.pretrain_summary(str(run), str(log))
    assert summary["metrics_found"] is False
    assert summary["batch_size"] == 256
    assert summary["images_per_s"] == pytest.approx(256 / 0.180)
    assert summary["knn"] == pytest.approx(0.3492)


# -- the suite without a GPU --------------------------------------------------


def _run_suite(path, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GPU_SUITE_ALLOW_CPU"}
    env.update(PATH=path, OUT=str(tmp_path / "out"))
    started = time.monotonic()
    proc = subprocess.run(
        [shutil.which("bash"), str(SUITE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, time.monotonic() - started


def test_suite_stops_at_once_when_nvidia_smi_fails(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    stub = stubs / "nvidia-smi"
    stub.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    stub.chmod(0o755)
    proc, seconds = _run_suite(f"{stubs}:{os.environ['PATH']}", tmp_path)
    assert proc.returncode != 0
    assert seconds < 20
    assert len(proc.stderr.strip().splitlines()) == 1 and "no GPU" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_suite_stops_at_once_without_nvidia_smi(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("dirname", "timeout", "head"):
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed")
        (tools / name).symlink_to(found)
    proc, seconds = _run_suite(str(tools), tmp_path)
    assert proc.returncode != 0
    assert seconds < 20
    assert len(proc.stderr.strip().splitlines()) == 1 and "no GPU" in proc.stderr


# -- the published PyTorch step -------------------------------------------------


def test_published_step_loss_equals_the_library_loss(rng):
    torch = pytest.importorskip("torch")
    import published_step
    from published_loss import PublishedJointCrossEntropy

    from keras_imsvd.layers import SoftVariableDiscretization
    from keras_imsvd.losses import joint_cross_entropy

    torch.manual_seed(0)
    backbone = torch.nn.Flatten()
    backbone.num_features = 12
    model = published_step.PublishedIMSVD(backbone, (16, 20), bin_size=5)
    model.train()
    x1, x2 = (torch.from_numpy(rng.normal(size=(8, 3, 2, 2))).float() for _ in "12")
    loss = float(model(x1, x2).detach())
    z1, z2 = (model.embed(x).detach().numpy() for x in (x1, x2))
    codes = SoftVariableDiscretization(bin_size=5)
    p1, p2 = (keras.ops.convert_to_numpy(codes(z)) for z in (z1, z2))
    ours = keras.ops.convert_to_numpy(joint_cross_entropy(p1, p2)[0])
    published = PublishedJointCrossEntropy(4, 5)(torch.tensor(p1), torch.tensor(p2))
    np.testing.assert_allclose(loss, float(published), rtol=1e-5)
    np.testing.assert_allclose(loss, ours, rtol=1e-5)


@pytest.mark.slow
def test_published_step_trains_and_matches_the_architecture():
    torch = pytest.importorskip("torch")
    import published_step

    import keras_imsvd

    torch.manual_seed(0)
    model = published_step.build("cifar", "cpu", width=4)
    keras_model = keras_imsvd.backbones.resnet18_cifar(width=4)
    count = sum(int(np.prod(v.shape)) for v in keras_model.trainable_variables)
    assert sum(p.numel() for p in model.backbone.parameters()) == count
    step = published_step.make_train_step(model, mixed_precision=False)
    rng = np.random.default_rng(0)
    views = [
        published_step.to_views(rng.random((4, 16, 16, 3), dtype=np.float32), "cpu")
        for _ in range(2)
    ]
    assert views[0].shape == (4, 3, 16, 16)
    before = [p.detach().clone() for p in model.parameters()]
    loss = float(step(*views))
    assert np.isfinite(loss)
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(moved)


def test_a_second_run_completes_the_first(suite):
    first = dict(suite, train_step=suite["train_step"][:4] + suite["train_step"][6:])
    second = {
        "date": "2026-12-01 01:50 UTC",
        "steps": {"train_imagenet": {"status": "ok", "seconds": 200}},
        "train_step": suite["train_step"][4:6],
        "pretrain": {"jax": {"knn": 0.1}},
    }
    assert gpu_report.overhead_targets(first)["verdict"] == "not measured"
    combined = gpu_report.combine([first, second])
    assert gpu_report.overhead_targets(combined)["verdict"] == "missed"
    assert combined["pretrain"]["jax"]["images_per_s"] == 2400.0
    assert set(combined["steps"]) == {"devices", "train_imagenet (run 2)"}
    assert gpu_report.cifar_targets(combined) == gpu_report.cifar_targets(suite)
