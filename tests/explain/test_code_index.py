"""Hard codes: bit counts, packing, exact retrieval and kNN votes."""

import numpy as np
import pytest

from keras_imsvd import explain


def _brute_force(database, queries, k):
    """Similarities and indices by a full sort on (-similarity, index)."""
    agreement = (queries[:, None, :] == database[None, :, :]).sum(axis=-1)  # (M, N)
    indices = np.stack(
        [np.lexsort((np.arange(len(database)), -row))[:k] for row in agreement]
    )
    return np.take_along_axis(agreement, indices, axis=1), indices


def test_bits_per_image():
    assert explain.bits_per_image(102, 80) == 714  # ImageNet settings
    assert explain.bits_per_image(32, 32) == 160
    assert explain.bits_per_image(1, 2) == 1
    assert explain.bits_per_image(10, 256) == 80
    assert explain.bits_per_image(10, 257) == 90
    with pytest.raises(ValueError, match="bin_size"):
        explain.bits_per_image(3, 1)
    with pytest.raises(TypeError, match="num_variables"):
        explain.bits_per_image(3.0, 8)


def test_pack_round_trip():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 80, size=(17, 102))
    packed = explain.pack_codes(codes, bin_size=80)
    assert packed.dtype == np.uint8
    assert packed.shape == (17, 90)  # ceil(714 / 8)
    np.testing.assert_array_equal(explain.unpack_codes(packed, 102, 80), codes)
    with pytest.raises(ValueError, match="bin_size"):
        explain.pack_codes(codes, bin_size=16)


def test_hand_built_neighbours():
    database = np.array(
        [
            [0, 0, 0, 0],
            [0, 1, 2, 3],
            [0, 1, 2, 0],
            [3, 3, 3, 3],
            [0, 1, 0, 0],
        ]
    )
    index = explain.CodeIndex(database, bin_size=4)
    assert index.codes.dtype == np.uint8
    assert index.bits_per_image == 8
    similarities, indices = index.query(np.array([[0, 1, 2, 3], [0, 0, 0, 3]]), k=3)
    # Query 0 agrees with rows 1, 2, 4, 0, 3 on 4, 3, 2, 1, 1 variables.
    np.testing.assert_array_equal(similarities[0], [4, 3, 2])
    np.testing.assert_array_equal(indices[0], [1, 2, 4])
    # Query 1 agrees with rows 0, 1, 2, 3, 4 on 3, 2, 1, 1, 2 variables:
    # the tie at 2 between rows 1 and 4 goes to the lower index.
    np.testing.assert_array_equal(similarities[1], [3, 2, 2])
    np.testing.assert_array_equal(indices[1], [0, 1, 4])
    assert similarities.dtype == np.int32
    assert indices.dtype == np.int64


def test_chunked_equals_unchunked_and_brute_force():
    rng = np.random.default_rng(0)
    database = rng.integers(0, 3, size=(301, 6))  # few bins: many ties
    queries = rng.integers(0, 3, size=(53, 6))
    index = explain.CodeIndex(database, bin_size=3)
    whole = index.query(queries, k=20, batch_size=1000, database_batch_size=1000)
    chunked = index.query(queries, k=20, batch_size=7, database_batch_size=13)
    tiny = index.query(queries, k=20, batch_size=1, database_batch_size=1)
    expected = _brute_force(database, queries, 20)
    for result in (whole, chunked, tiny):
        np.testing.assert_array_equal(result[0], expected[0])
        np.testing.assert_array_equal(result[1], expected[1])


def test_classify_majority_and_similarity_votes():
    database = np.array([[0, 0, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0]])
    labels = np.array(["a", "a", "b", "b"])
    index = explain.CodeIndex(database, labels)
    query = np.array([[0, 0, 0]])
    # Neighbours (k=3): row 0 (3 agree, a), 1 (2, a), 3 (1, b).
    assert index.classify(query, k=3, vote="majority").tolist() == ["a"]
    # k=4: two votes each for "a" and "b"; the majority tie goes to the
    # smallest label, the similarity vote is 5 for "a" against 1 for "b".
    assert index.classify(query, k=4, vote="majority").tolist() == ["a"]
    query = np.array([[1, 1, 0]])
    # Agreement: rows 0:1, 1:0, 2:2, 3:3. With k=4 majority ties -> "a";
    # similarity: "a" 1, "b" 5 -> "b".
    assert index.classify(query, k=4, vote="majority").tolist() == ["a"]
    assert index.classify(query, k=4, vote="similarity").tolist() == ["b"]
    assert index.accuracy(np.array([[1, 1, 0], [0, 0, 0]]), ["b", "a"], k=2) == 1.0
    with pytest.raises(ValueError, match="vote"):
        index.classify(query, vote="mean")


def test_model_codes_find_themselves(tiny_model, images, labels):
    codes = tiny_model.codes(images)
    np.testing.assert_array_equal(
        codes, np.argmax(tiny_model.discretize(images), axis=-1)
    )
    index = explain.CodeIndex(codes, labels, bin_size=tiny_model.bin_size)
    similarities, indices = index.query(codes, k=1)
    np.testing.assert_array_equal(similarities[:, 0], tiny_model.num_variables)
    # The first neighbour is the image itself or an earlier one with the same code.
    assert np.all(indices[:, 0] <= np.arange(len(codes)))
    np.testing.assert_array_equal(codes[indices[:, 0]], codes)
    assert 0.0 <= index.accuracy(codes, labels, k=5) <= 1.0


def test_bad_codes_raise():
    index = explain.CodeIndex(np.zeros((3, 2), dtype="int64"), bin_size=4)
    with pytest.raises(ValueError, match="variables"):
        index.query(np.zeros((1, 3), dtype="int64"))
    with pytest.raises(ValueError, match="k"):
        index.query(np.zeros((1, 2), dtype="int64"), k=4)
    with pytest.raises(TypeError, match="integer"):
        explain.CodeIndex(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="labels"):
        explain.CodeIndex(np.zeros((3, 2), dtype="int64")).classify(
            np.zeros((1, 2), dtype="int64")
        )
