import keras
import numpy as np
import pytest

from keras_imsvd.evaluation import extract_features
from keras_imsvd.evaluation import extract_features_to_file
from keras_imsvd.evaluation import knn_predict


def _batches(images, labels, batch_size):
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size], labels[start : start + batch_size]


def test_knn_on_a_memmapped_bank_in_small_blocks_equals_in_memory(tmp_path, rng):
    train = rng.normal(size=(1000, 24)).astype("float32")
    labels = rng.integers(0, 7, 1000)
    queries = rng.normal(size=(300, 24)).astype("float32")
    bank = np.memmap(tmp_path / "bank.npy", "float32", "w+", shape=train.shape)
    bank[:] = train
    bank.flush()
    bank = np.memmap(tmp_path / "bank.npy", "float32", "r", shape=train.shape)
    expected = knn_predict(train, labels, queries, k=20)
    streamed = knn_predict(
        bank, labels, queries, k=20, batch_size=64, train_batch_size=97
    )
    np.testing.assert_array_equal(streamed, expected)
    # The vote itself, in float64 for the first query.
    similarities = (queries[0] / np.linalg.norm(queries[0])) @ (
        train / np.linalg.norm(train, axis=1, keepdims=True)
    ).T.astype("float64")
    nearest = np.argsort(-similarities)[:20]
    scores = np.bincount(
        labels[nearest], np.exp((similarities[nearest] - similarities.max()) / 0.07)
    )
    assert streamed[0] == np.argmax(scores)


@pytest.mark.parametrize("where", ["memory", "temporary", "path"])
def test_features_written_batch_by_batch_equal_extract_features(tmp_path, rng, where):
    images = rng.uniform(size=(70, 6, 6, 3)).astype("float32")
    labels = np.arange(70) % 5
    encoder = keras.Sequential(
        [keras.Input((6, 6, 3)), keras.layers.Flatten(), keras.layers.Dense(8)]
    )
    path = tmp_path / "features.npy" if where == "path" else None
    limit = 1 << 30 if where == "memory" else 0
    features, out_labels = extract_features_to_file(
        encoder, _batches(images, labels, 16), 80, path=path, max_memory_bytes=limit
    )
    assert isinstance(features, np.memmap) == (where != "memory")
    assert features.shape == (70, 8)
    np.testing.assert_allclose(
        features, extract_features(encoder, images, 16), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(out_labels, labels)
    if where == "path":
        assert (tmp_path / "features.npy").stat().st_size == 80 * 8 * 4


def test_a_plain_function_and_float16_storage(rng):
    images = rng.uniform(size=(10, 2, 2, 1)).astype("float32")
    features, _ = extract_features_to_file(
        lambda x: x, _batches(images, np.zeros(10, int), 4), 10, dtype="float16"
    )
    assert features.dtype == np.float16
    np.testing.assert_allclose(features, images.reshape(10, -1), atol=1e-3)


def test_bad_arguments_are_named(rng):
    images = rng.uniform(size=(10, 2, 2, 1)).astype("float32")
    with pytest.raises(ValueError, match="num_images"):
        extract_features_to_file(lambda x: x, _batches(images, np.zeros(10), 4), 5)
    with pytest.raises(ValueError, match="dtype"):
        extract_features_to_file(lambda x: x, [], 5, dtype="int8")
    with pytest.raises(TypeError, match="encoder_or_fn"):
        extract_features_to_file(3, [], 5)
