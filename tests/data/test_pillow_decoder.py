"""`read_image_folder(decoder="pillow")` against TensorFlow's decoding."""

import numpy as np
import pytest
from PIL import Image

from keras_imsvd.data import read_image_folder

# JPEG decoders may differ by their inverse DCT and chroma upsampling; for
# smooth images both stay within a few grey levels of each other.
JPEG_MAX_DIFFERENCE = 8
JPEG_MEAN_DIFFERENCE = 1.5


def _smooth_image(rng, height, width):
    """A smooth colour image (low frequencies, as photographs mostly are)."""
    rows = np.linspace(0, 1, height)[:, None, None]
    cols = np.linspace(0, 1, width)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, size=(1, 1, 3))
    image = 0.5 + 0.4 * np.sin(3 * rows + 2 * cols + phase)
    return np.clip(np.round(image * 255), 0, 255).astype("uint8")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir()
        for index in range(6):
            shape = (40 + 4 * index, 48 - 2 * index)
            image = Image.fromarray(_smooth_image(rng, *shape))
            image.save(root / label / f"{index}.jpg", quality=90)
            image.save(root / label / f"{index}.png")
    return root


def _difference(size, folder, channels=3):
    pillow, labels = read_image_folder(folder, size, channels, decoder="pillow")
    tensorflow, expected = read_image_folder(
        folder, size, channels, decoder="tensorflow"
    )
    np.testing.assert_array_equal(labels, expected)
    assert pillow.shape == tensorflow.shape and pillow.dtype == np.uint8
    return np.abs(pillow.astype("int32") - tensorflow.astype("int32")), pillow


def test_same_pixels_as_tensorflow_at_the_stored_size(tmp_path, folder):
    # One file size, no resize: the decoders alone.
    single = tmp_path / "single"
    (single / "a").mkdir(parents=True)
    image = Image.fromarray(_smooth_image(np.random.default_rng(1), 32, 32))
    image.save(single / "a" / "0.png")
    image.save(single / "a" / "1.jpg", quality=90)
    difference, pillow = _difference(32, single)
    # The PNG is lossless: equal to the pixels saved, by both decoders.
    np.testing.assert_array_equal(pillow[0], np.asarray(image))
    assert difference[0].max() == 0
    # The JPEG: within the decoders' rounding.
    assert difference[1].max() <= JPEG_MAX_DIFFERENCE
    assert difference[1].mean() <= JPEG_MEAN_DIFFERENCE


def test_resized_images_match_within_resampling(folder):
    # Centre crop to the aspect ratio, then an antialiased bilinear reduction:
    # both libraries average over the same footprint, with their own weights.
    difference, _ = _difference((24, 20), folder)
    assert difference.mean() <= 2.0
    assert np.percentile(difference, 99) <= 12


def test_grayscale_images_match(folder):
    difference, pillow = _difference(16, folder, channels=1)
    assert pillow.shape[-1] == 1
    # ITU-R 601 weights in both (TensorFlow 0.2989, 0.587, 0.114).
    assert difference.mean() <= 2.0


def test_an_unreadable_file_is_named(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(tmp_path / "a" / "0.png")
    (tmp_path / "a" / "1.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="1.jpg"):
        read_image_folder(tmp_path, 8, decoder="pillow")


def test_unknown_decoder_is_refused(folder):
    with pytest.raises(ValueError, match="decoder='opencv'"):
        read_image_folder(folder, 8, decoder="opencv")
