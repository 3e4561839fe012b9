"""Pretrain with IMSVD and evaluate: `KERAS_BACKEND=jax python train.py --help`."""

import os
import sys

# TensorFlow's C++ start-up lines, unless the user asked for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_imsvd.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
