"""Training parity with a PyTorch transcription of the published CIFAR-10 step.

Trains the two-block residual network of `tests/parity/_reference.py` in
PyTorch (`torch.optim.SGD(momentum=0.9, weight_decay=5e-4)`, the published
schedule set step by step) and its Keras twin (`IMSVDModel` with `TorchSGD`)
from the same initial weights on the same CIFAR-10 views (the published
augmentations, `keras_imsvd.augment.cifar_views`, drawn once and given to
both), then writes both loss curves to a PNG and the kNN accuracy (k 20,
T 0.07) of both encoders on held-out images.

    KERAS_BACKEND=jax python benchmarks/parity.py --steps 300
"""

import argparse
import copy
import os
import sys
import time

import keras
import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--projector", default="256-512")
    parser.add_argument("--bin-size", type=int, default=16)
    parser.add_argument("--base-lr", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--knn-train", type=int, default=5000)
    parser.add_argument("--knn-test", type=int, default=1000)
    parser.add_argument("--float64", action="store_true", help="torch in float64")
    parser.add_argument(
        "--seed", type=int, default=0, help="initial weights and views (0: as before)"
    )
    parser.add_argument("--output", default=os.path.join(_HERE, "results"))
    return parser.parse_args(argv)


def _views(images, batch_size, steps, image_size, seed=0):
    """`steps` pairs of CIFAR-10 views, drawn once, as float32 NHWC arrays."""
    import keras_imsvd

    rng = np.random.default_rng(seed)
    view_1, view_2 = keras_imsvd.augment.cifar_views(image_size, seed=seed)
    batches = []
    for _ in range(steps):
        x = images[rng.choice(len(images), batch_size, replace=False)]
        batches.append(
            tuple(
                keras.ops.convert_to_numpy(view(x, training=True)).astype("float32")
                for view in (view_1, view_2)
            )
        )
    return batches


def _knn(train, test, encode):
    import keras_imsvd

    (x_train, y_train), (x_test, y_test) = train, test
    return keras_imsvd.evaluation.knn_classify(
        encode(x_train), y_train, encode(x_test), y_test, k=20, temperature=0.07
    )


def _torch_features(net, images, batch_size=500):
    import torch

    net.eval()
    dtype = next(net.parameters()).dtype
    with torch.no_grad():
        return np.concatenate(
            [
                net.features(
                    torch.from_numpy(
                        images[i : i + batch_size].transpose(0, 3, 1, 2)
                    ).to(dtype)
                )
                .float()
                .numpy()
                for i in range(0, len(images), batch_size)
            ]
        )


def _plot(torch_losses, keras_losses, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    top.plot(torch_losses, label="PyTorch reference")
    top.plot(keras_losses, "--", label=f"keras_imsvd ({keras.backend.backend()})")
    top.set_ylabel("IMSVD loss")
    top.legend()
    top.set_title(title)
    gap = np.abs(np.array(keras_losses) - np.array(torch_losses))
    bottom.semilogy(gap / np.abs(torch_losses))
    bottom.set_ylabel("relative difference")
    bottom.set_xlabel("step")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None):
    args = _parse(argv)
    sys.path.insert(0, os.path.dirname(_HERE))
    import torch

    import keras_imsvd
    from tests.parity import _reference as ref

    torch.manual_seed(args.seed)
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras_imsvd.data.load_cifar10_folder()
    size = (args.image_size, args.image_size, 3)
    batches = _views(
        x_train, args.batch_size, args.steps, args.image_size, seed=args.seed
    )
    schedule = keras_imsvd.optimizers.published_schedule(
        args.base_lr,
        batch_size=args.batch_size,
        steps_per_epoch=max(args.steps // 20, 1),
        epochs=20,
        warmup_epochs=2,
    )
    hidden, embedding = (int(w) for w in args.projector.split("-"))
    net = ref.TorchNet(3, args.width, hidden, embedding)
    model = ref.keras_model(size, args.width, hidden, embedding, args.bin_size)
    ref.copy_weights(net, model)
    if args.float64:
        net = copy.deepcopy(net).double()
    start = time.time()
    torch_losses = ref.train_torch(
        net, batches, ref.learning_rates(schedule, args.steps), args.bin_size
    )
    torch_seconds, start = time.time() - start, time.time()
    keras_losses = ref.train_keras(model, batches, schedule)
    keras_seconds = time.time() - start
    train = (x_train[: args.knn_train], y_train[: args.knn_train])
    test = (x_test[: args.knn_test], y_test[: args.knn_test])
    knn_torch = _knn(train, test, lambda x: _torch_features(net, x))
    knn_keras = _knn(train, test, lambda x: model.embed(x))
    differences = ref.weight_differences(net, model)
    loss_gap = np.abs(np.array(keras_losses) - torch_losses) / np.abs(torch_losses)
    os.makedirs(args.output, exist_ok=True)
    backend = keras.backend.backend()
    suffix = f"_seed{args.seed}" if args.seed else ""
    path = os.path.join(args.output, f"parity_{backend}{suffix}.png")
    _plot(torch_losses, keras_losses, path, f"{args.steps} steps, CIFAR-10 views")
    trainable = {k: v for k, v in differences.items() if "moving" not in k}
    print(
        f"backend {backend}, steps {args.steps}, batch {args.batch_size}, "
        f"seed {args.seed}"
    )
    print(
        f"loss: first {torch_losses[0]:.5f}, last torch {torch_losses[-1]:.5f} "
        f"keras {keras_losses[-1]:.5f}, max relative difference "
        f"{loss_gap.max():.2e} (step {int(loss_gap.argmax())})"
    )
    print(
        f"weights: max relative difference {max(trainable.values()):.2e} "
        f"({max(trainable, key=trainable.get)}), moving statistics "
        f"{max(differences.values()):.2e}"
    )
    print(f"kNN top-1: torch {knn_torch:.4f}, keras {knn_keras:.4f}")
    print(f"seconds: torch {torch_seconds:.0f}, keras {keras_seconds:.0f}; {path}")


if __name__ == "__main__":
    main()
