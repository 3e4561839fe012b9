#!/usr/bin/env bash
# The GPU checks and benchmarks of keras_imsvd, in one run of under 8 minutes.
#
# On a GPU machine without network, from the repository root, after
# `bash benchmarks/download_gpu_wheels.sh` has filled .whl/ and .gpu_data/:
#
#   OUT=/path/to/empty/folder bash benchmarks/gpu_suite.sh
#
# Steps, each time-boxed with `timeout` (a failed or stopped step is recorded
# and the suite goes on):
#   devices        each backend's view of the GPU (fails on a CPU fallback)
#   loss           benchmarks/loss_speed.py at both published shapes, on the GPU
#   train_cifar    benchmarks/train_step.py, CIFAR-10 settings, float32 and mixed
#   pretrain_jax   a short CIFAR-10 pretraining (train.py, views on the device)
#   pretrain_torch the same on PyTorch
#   train_imagenet benchmarks/train_step.py, ImageNet settings, mixed precision
# Then benchmarks/gpu_report.py merges everything into $OUT/gpu_suite.json and
# writes the report section to $OUT/gpu_report.md; $OUT/gpu_suite.log holds
# every step's output.
#
# Environment:
#   OUT                  the folder for the results (required)
#   PYTHON               the interpreter (default python3)
#   GPU_SUITE_ALLOW_CPU  1: a smoke run with tiny settings where there is no GPU
#   GPU_SUITE_STEPS      the steps to run, space-separated (default: all)
#   GPU_SUITE_DEADLINE   seconds for the whole suite (default 465; smoke 900)
#   GPU_SUITE_EPOCHS     pretraining epochs (default 3: the middle one is timed)
#   GPU_SUITE_IMAGENET_BACKENDS  backends of the ImageNet step (default jax,torch)
#   BOX_<STEP>           a step's time box in seconds, e.g. BOX_LOSS=90
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CPU=${GPU_SUITE_ALLOW_CPU:-0}
if [ -z "${OUT:-}" ]; then
    echo "gpu_suite: set OUT to an empty folder for the results" >&2
    exit 2
fi
GPU_NAME=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
if [ -z "$GPU_NAME" ] && [ -d /proc/driver/nvidia/gpus ]; then
    # A driver without nvidia-smi on the path still lists its GPUs here.
    GPU_NAME=$(cat /proc/driver/nvidia/gpus/*/information 2>/dev/null |
        sed -n 's/^Model:[[:space:]]*//p' | head -1)
fi
if [ -z "$GPU_NAME" ]; then
    if [ "$CPU" != 1 ]; then
        echo "gpu_suite: no GPU (nvidia-smi is missing or failed); GPU_SUITE_ALLOW_CPU=1 runs the CPU smoke test" >&2
        exit 3
    fi
    GPU_NAME="none (CPU smoke run)"
fi

mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_suite.XXXXXX")
LOG="$OUT/gpu_suite.log"
STEPS_FILE="$WORK/steps.jsonl"
: >"$LOG"
: >"$STEPS_FILE"
if [ "$CPU" = 1 ]; then
    DEADLINE=${GPU_SUITE_DEADLINE:-900}
else
    DEADLINE=${GPU_SUITE_DEADLINE:-465}
fi
EPOCHS=${GPU_SUITE_EPOCHS:-3}
STEPS=${GPU_SUITE_STEPS:-devices loss train_cifar pretrain_jax pretrain_torch train_imagenet}
say() { echo "[gpu_suite $(date -u +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$LOG"; }
say "device: $GPU_NAME; python: $PYTHON; work folder: $WORK"

# Keras and its missing dependencies, from the wheels carried in .whl/; the
# repository itself comes first on the path, so the code run is the tree's.
# The smoke run installs them for Python 3.12 (the GPU machine's) into its work
# folder, to check them, and keeps its own interpreter's packages.
SITE=${GPU_SUITE_SITE:-/tmp/site}
TAGS=()
if [ "$CPU" = 1 ]; then
    SITE=${GPU_SUITE_SITE:-$WORK/site}
    TAGS=(--python-version 3.12 --implementation cp --only-binary=:all:
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
        --platform any)
fi
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$SITE" "${TAGS[@]}" .whl/*.whl >>"$LOG" 2>&1 || {
        # A wheel is a zip of what goes into site-packages.
        say "pip install of .whl/ failed (see the log); unpacking the wheels"
        [ "$CPU" = 1 ] || "$PYTHON" -c 'import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])' "$SITE" .whl/*.whl >>"$LOG" 2>&1
    }
else
    say "no wheels in .whl/ (run benchmarks/download_gpu_wheels.sh first)"
fi
if [ "$CPU" = 1 ]; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export TF_CPP_MIN_LOG_LEVEL=2
# JAX and PyTorch share the GPU in the loss benchmark's JAX processes.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}
if [ -d .gpu_data/datasets/cifar10 ]; then
    export KERAS_IMSVD_SHARED="$PWD/.gpu_data"
fi
# A fresh machine extracts the archive once into the work folder.
[ "$CPU" = 1 ] || export KERAS_IMSVD_CACHE=${KERAS_IMSVD_CACHE:-$WORK/cache}
say "installed; $("$PYTHON" -c 'import keras, keras_imsvd; print("keras", keras.__version__, "from", keras.__file__, "| keras_imsvd from", keras_imsvd.__file__)' 2>&1 | tail -1)"

# step NAME BOX COMMAND...: runs COMMAND under `timeout`, its output in the log.
step() {
    local name=$1 box=$2
    shift 2
    # The smoke run's CPU steps get four times the GPU time boxes.
    [ "$CPU" = 1 ] && box=$((box * 4))
    local left=$((DEADLINE - SECONDS - 15))
    if [ "$box" -gt "$left" ]; then box=$left; fi
    if [ "$box" -lt 10 ]; then
        say "$name: skipped, no time left"
        echo "{\"name\": \"$name\", \"status\": \"skipped\", \"reason\": \"no time left in the suite\"}" >>"$STEPS_FILE"
        return
    fi
    say "$name: started (time box ${box}s)"
    local started=$SECONDS rc status
    echo "===== $name: $*" >>"$LOG"
    timeout -k 5 "$box" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    cat "$WORK/$name.log" >>"$LOG"
    case $rc in
    0) status=ok ;;
    124 | 137) status="timed out" ;;
    *) status=failed ;;
    esac
    local seconds=$((SECONDS - started))
    echo "{\"name\": \"$name\", \"status\": \"$status\", \"rc\": $rc, \"seconds\": $seconds, \"box_s\": $box, \"log\": \"$WORK/$name.log\"}" >>"$STEPS_FILE"
    say "$name: $status (exit $rc) in ${seconds}s"
}

# The smoke run checks the suite's plumbing on a CPU with tiny settings and a
# reduced set of backends (later flags override earlier ones).
if [ "$CPU" = 1 ]; then
    DEVICE_FLAGS=(--allow-cpu --timeout 100)
    LOSS_FLAGS=(--quick --repeats 1 --device auto --backends jax)
    CIFAR_FLAGS=(--backends torch --precisions mixed --cifar-batch 4
        --cifar-width 8 --steps 1)
    IMAGENET_FLAGS=(--backends torch --imagenet-batch 2 --imagenet-size 32
        --steps 1)
    PRETRAIN_FLAGS=(--arch small_convnet --mlp 256-256 --bin-size 16 --limit 192
        --batch-size 64 --validation-size 100)
else
    DEVICE_FLAGS=(--timeout 25)
    LOSS_FLAGS=(--repeats 10 --device cuda)
    CIFAR_FLAGS=(--backends jax,torch --cifar-batch 512 --steps 5
        --worker-timeout 60)
    IMAGENET_FLAGS=(--backends "${GPU_SUITE_IMAGENET_BACKENDS:-jax,torch}"
        --imagenet-batch 256 --imagenet-size 224
        --steps 3 --worker-timeout 80)
    PRETRAIN_FLAGS=()
fi

# A fresh machine extracts and decodes the 50,000 CIFAR-10 JPEG files once
# (tens of seconds): on spare cores, in the background, away from the GPU,
# while the first steps run, so the pretraining steps find them decoded.
PREFETCH_PID=
if [[ " $STEPS " == *" pretrain_"* ]]; then
    CUDA_VISIBLE_DEVICES= KERAS_BACKEND=torch nice -n 10 "$PYTHON" -c \
        'import keras_imsvd; keras_imsvd.data.load_cifar10_folder(validation_split=5000, seed=0)' \
        >"$WORK/prefetch.log" 2>&1 &
    PREFETCH_PID=$!
    say "decoding CIFAR-10 in the background (process $PREFETCH_PID)"
fi
wait_for_prefetch() {
    [ -n "$PREFETCH_PID" ] || return
    local waited=0
    while kill -0 "$PREFETCH_PID" 2>/dev/null && [ "$waited" -lt 60 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if kill -0 "$PREFETCH_PID" 2>/dev/null; then
        # Stopped, so that one process extracts at a time; an interrupted
        # extraction is redone by the pretraining.
        kill "$PREFETCH_PID" 2>/dev/null
        say "CIFAR-10 still decoding after ${waited}s more: stopped; the pretraining decodes it"
    else
        wait "$PREFETCH_PID"
        say "CIFAR-10 decoded (exit $?, waited ${waited}s)"
    fi
    cat "$WORK/prefetch.log" >>"$LOG"
    PREFETCH_PID=
}

for name in $STEPS; do
    case $name in
    devices)
        step devices "${BOX_DEVICES:-30}" "$PYTHON" benchmarks/gpu_devices.py \
            --output "$WORK/devices.json" "${DEVICE_FLAGS[@]}"
        ;;
    loss)
        step loss "${BOX_LOSS:-70}" "$PYTHON" benchmarks/loss_speed.py \
            --backends jax,torch --no-memory "${LOSS_FLAGS[@]}" \
            --output "$WORK/loss.json"
        ;;
    train_cifar)
        step train_cifar "${BOX_TRAIN_CIFAR:-110}" "$PYTHON" benchmarks/train_step.py \
            --settings cifar --precisions float32,mixed \
            --models imsvd,published "${CIFAR_FLAGS[@]}" \
            --output "$WORK/train_cifar.json"
        ;;
    train_imagenet)
        step train_imagenet "${BOX_TRAIN_IMAGENET:-90}" "$PYTHON" \
            benchmarks/train_step.py --settings imagenet --precisions mixed \
            --models imsvd,supervised,published "${IMAGENET_FLAGS[@]}" \
            --output "$WORK/train_imagenet.json"
        ;;
    pretrain_jax | pretrain_torch)
        backend=${name#pretrain_}
        wait_for_prefetch
        box_name="BOX_${name^^}"
        step "$name" "${!box_name:-80}" env KERAS_BACKEND="$backend" \
            "$PYTHON" train.py --dataset cifar10 --augment-on device \
            --mixed-precision auto --epochs "$EPOCHS" \
            --probe-epochs 1 --verbose 2 "${PRETRAIN_FLAGS[@]}" \
            --output-dir "$WORK/pretrain_$backend"
        ;;
    *) say "unknown step $name (choose from devices loss train_cifar pretrain_jax pretrain_torch train_imagenet)" ;;
    esac
done

say "merging the results"
"$PYTHON" benchmarks/gpu_report.py merge --work "$WORK" --device "$GPU_NAME" \
    --suite-seconds "$SECONDS" $([ "$CPU" = 1 ] && echo --cpu-smoke) \
    --output "$OUT/gpu_suite.json" >>"$LOG" 2>&1 ||
    say "merge failed (see the log); the raw files stay in $WORK"
"$PYTHON" benchmarks/gpu_report.py report "$OUT/gpu_suite.json" \
    --markdown "$OUT/gpu_report.md" >>"$LOG" 2>&1 ||
    say "report failed (see the log)"
say "done in ${SECONDS}s: $OUT/gpu_suite.json, $OUT/gpu_report.md, $OUT/gpu_suite.log"
