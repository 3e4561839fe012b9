"""Pretrain with IMSVD and evaluate: `KERAS_BACKEND=jax python train.py --help`."""

import sys

from keras_imsvd.cli import main

if __name__ == "__main__":
    sys.exit(main())
