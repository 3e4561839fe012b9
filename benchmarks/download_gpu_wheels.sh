#!/usr/bin/env bash
# Downloads the wheels of benchmarks/gpu_wheels.txt (Python 3.12, manylinux
# x86_64) and builds this package's own wheel into .whl/, and copies the
# CIFAR-10 archive into .gpu_data/, for benchmarks/gpu_suite.sh on a machine
# without network. Both folders are ignored by git.
#
#   bash benchmarks/download_gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mkdir -p .whl
"$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl -r benchmarks/gpu_wheels.txt
rm -f .whl/keras_imsvd-*.whl
"$PYTHON" -m pip wheel --no-deps . -w .whl
archive=../shared/datasets/cifar10/cifar10_train_jpeg.tar.gz
if [ -f "$archive" ]; then
    mkdir -p .gpu_data/datasets/cifar10
    install -m 644 "$archive" .gpu_data/datasets/cifar10/
else
    echo "no CIFAR-10 archive at $archive: the pretraining steps will fail" >&2
fi
du -sh .whl .gpu_data 2>/dev/null || true
