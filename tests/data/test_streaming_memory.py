"""Two streamed epochs and a streamed kNN over a folder of ~2,000 JPEGs."""

import numpy as np
import pytest
from PIL import Image

from keras_imsvd.augment import imagenet_views
from keras_imsvd.data import StreamingViews
from keras_imsvd.data import list_image_files
from keras_imsvd.data import read_image_folder
from keras_imsvd.data import streaming_images
from keras_imsvd.evaluation import extract_features_to_file
from keras_imsvd.evaluation import knn_predict

COUNT, BATCH, SIZE = 2000, 100, 16


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream") / "images"
    rng = np.random.default_rng(0)
    for label in range(4):
        (root / f"c{label}").mkdir(parents=True)
    for i in range(COUNT):
        label = i % 4
        image = rng.integers(0, 90, (20 + i % 7, 18 + i % 5, 3), dtype=np.uint8)
        image[..., label % 3] += 120 + 30 * (label // 3)
        Image.fromarray(image).save(root / f"c{label}" / f"{i:05d}.jpg", quality=85)
    return root


@pytest.mark.slow
def test_every_file_is_read_once_per_epoch(folder):
    files, _, _ = list_image_files(folder)
    assert len(files) == COUNT
    # The label of each file is its index: the batches name the files read.
    stream = StreamingViews(
        files, np.arange(COUNT), imagenet_views(SIZE, seed=0), SIZE, BATCH,
        seed=1, with_labels=True, num_shards=1, shard_index=0,
    )  # fmt: skip
    epochs = [[], []]
    for step, (pair, labels) in enumerate(stream.dataset(epochs=2)):
        assert pair["view_1"].shape == (BATCH, SIZE, SIZE, 3)
        epochs[step // stream.steps_per_epoch].extend(labels.numpy().tolist())
    for epoch, seen in enumerate(epochs):
        assert sorted(seen) == list(range(COUNT))
        np.testing.assert_array_equal(seen, stream.order(epoch))
    assert epochs[0] != epochs[1]
    assert stream.skipped == 0


@pytest.mark.slow
def test_streamed_knn_equals_the_in_memory_path(folder, tmp_path):
    files, labels, _ = list_image_files(folder)
    projection = np.random.default_rng(0).normal(size=(SIZE * SIZE * 3, 32))

    def encoder(images):
        return np.asarray(images, "float64").reshape(len(images), -1) @ projection

    images, in_memory_labels = read_image_folder(folder, SIZE)
    np.testing.assert_array_equal(in_memory_labels, labels)
    expected = encoder(images.astype("float32") / 255.0).astype("float32")
    streamed, streamed_labels = extract_features_to_file(
        encoder,
        streaming_images(files, labels, SIZE, batch_size=64),
        COUNT,
        path=tmp_path / "bank.npy",
    )
    assert isinstance(streamed, np.memmap)
    np.testing.assert_array_equal(streamed_labels, labels)
    np.testing.assert_allclose(streamed, expected, rtol=1e-5, atol=1e-4)
    order = np.random.default_rng(1).permutation(COUNT)
    bank, queries = np.sort(order[:1500]), np.sort(order[1500:])
    reference = knn_predict(expected[bank], labels[bank], expected[queries], k=20)
    chunked = knn_predict(
        streamed[bank], labels[bank], streamed[queries], k=20,
        batch_size=100, train_batch_size=256,
    )  # fmt: skip
    np.testing.assert_array_equal(chunked, reference)
    assert np.mean(chunked == labels[queries]) > 0.5  # the colours separate
