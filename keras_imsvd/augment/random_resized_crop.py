"""Random crop of random area and aspect ratio, resized to a fixed size."""

import math

import keras

from keras_imsvd._keras_compat import seed_generator
from keras_imsvd._validation import check_positive_int
from keras_imsvd.augment._image_layer import ImageLayer
from keras_imsvd.augment._image_layer import check_range

# Crop sizes tried per image before falling back to a centre crop (as torchvision).
_NUM_ATTEMPTS = 10


@keras.saving.register_keras_serializable(package="keras_imsvd")
class RandomResizedCrop(ImageLayer):
    """Crops a random region of each image and resizes it to `(height, width)`.

    The torchvision recipe used by SimCLR, BYOL, Barlow Twins and IMSVD. For each
    image of a batch independently, with input size `H x W`:

    - the crop area is `a * H * W` with `a ~ U(scale)`, its aspect ratio (width over
      height) is `r = exp(u)` with `u ~ U(log ratio)`; the crop is
      `w = round(sqrt(a H W r))` by `h = round(sqrt(a H W / r))`;
    - up to 10 draws are made until the crop fits (`0 < h <= H`, `0 < w <= W`);
      its top-left corner is then uniform over the integer positions that keep it
      inside the image;
    - if no draw fits, the crop is the centre of the image, as large as possible
      with its aspect ratio clamped into `ratio`.

    The crop is then resized to `(height, width)` with half-pixel-centre sampling
    (as `torch.nn.functional.interpolate(..., align_corners=False)`), without
    antialiasing: views usually enlarge crops, where antialiasing changes nothing.

    With `horizontal_flip=True`, each crop is also mirrored left-right with
    probability 1/2, the same images as a `RandomFlip("horizontal")` after the
    crop would give, at no extra cost: the resampling grid is read right to
    left. The view presets use it.

    With `training=False` the layer is deterministic: it takes the largest centred
    crop with the aspect ratio of `(height, width)` and resizes it, so a square
    image becomes a plain resize.

    The layer runs inside `tf.data.Dataset.map` under every backend, on batches
    (rank 4) or single images (rank 3).

    Args:
        height: int, height of the output. Required.
        width: int, width of the output. Required.
        scale: pair `(lo, hi)` with `0 < lo <= hi <= 1`, range of the crop area as a
            fraction of the image area. Defaults to `(0.08, 1.0)`.
        ratio: pair `(lo, hi)` with `0 < lo <= hi`, range of the crop aspect ratio
            (width / height), sampled log-uniformly. Defaults to `(3/4, 4/3)`.
        interpolation: `"bilinear"` or `"nearest"`. Defaults to `"bilinear"`.
        horizontal_flip: bool, mirror each crop with probability 1/2 (training
            only). Defaults to `False`.
        seed: int or `None`, seed of the layer's `keras.random.SeedGenerator`.
            Defaults to `None`.
        data_format: `"channels_last"` or `"channels_first"`, or `None` for
            `keras.config.image_data_format()`. Defaults to `None`.
        **kwargs: base layer arguments such as `name`.

    Call arguments:
        inputs: images of shape `(N, H, W, C)` or `(H, W, C)` (channels last), any
            real dtype; the output has the layer's compute dtype.
        training: bool, random crops when true, centre crop when false. Defaults
            to `True`.

    Returns:
        Images of shape `(N, height, width, C)` (or `(height, width, C)`).

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> layer = keras_imsvd.augment.RandomResizedCrop(32, 32, scale=(0.2, 1.0))
    >>> images = np.random.uniform(size=(4, 40, 48, 3)).astype("float32")
    >>> tuple(layer(images).shape)
    (4, 32, 32, 3)

    References:
        - Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.
        - Niu, Xia, Shan, Wang, "Information-Maximized Soft Variable
          Discretization for Self-Supervised Image Representation Learning",
          2025. https://arxiv.org/abs/2501.03469
    """

    def __init__(
        self,
        height,
        width,
        scale=(0.08, 1.0),
        ratio=(3.0 / 4.0, 4.0 / 3.0),
        interpolation="bilinear",
        horizontal_flip=False,
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(data_format=data_format, **kwargs)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                "interpolation must be 'bilinear' or 'nearest'. "
                f"Received: interpolation={interpolation!r}"
            )
        self.height = check_positive_int("height", height)
        self.width = check_positive_int("width", width)
        self.scale = check_range("scale", scale, upper=1.0, positive=True)
        self.ratio = check_range("ratio", ratio, positive=True)
        self.interpolation = interpolation
        if not isinstance(horizontal_flip, bool):
            raise TypeError(
                "horizontal_flip must be a bool. "
                f"Received: horizontal_flip={horizontal_flip!r}"
            )
        self.horizontal_flip = horizontal_flip
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, data, training=True, seed=None):
        images = data["images"] if isinstance(data, dict) else data
        shape = self.backend.core.shape(images)
        height_axis, width_axis = self._spatial_axes(len(shape))
        batch_size = self._batch_size(images)
        in_h = self._as_float(shape[height_axis])
        in_w = self._as_float(shape[width_axis])
        if not training:
            return {"boxes": self._centre_boxes(batch_size, in_h, in_w)}
        if seed is None:
            seed = seed_generator(self)
        boxes, flip = self._random_boxes(batch_size, in_h, in_w, seed)
        if flip is None:
            return {"boxes": boxes}
        return {"boxes": boxes, "flip": flip}

    def transform_images(self, images, transformation=None, training=True):
        images = self.backend.cast(images, self.compute_dtype)
        if transformation is None:
            transformation = self.get_random_transformation(images, training=training)
        return self._compiled(
            self._crop, images, transformation, training, self.interpolation
        )

    def transform_segmentation_masks(
        self, segmentation_masks, transformation=None, training=True
    ):
        return self._crop(segmentation_masks, transformation, training, "nearest")

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        height_axis, width_axis = self._spatial_axes(len(shape))
        shape[height_axis] = self.height
        shape[width_axis] = self.width
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "scale": self.scale,
                "ratio": self.ratio,
                "interpolation": self.interpolation,
                "horizontal_flip": self.horizontal_flip,
                "seed": self.seed,
            }
        )
        return config

    def _as_float(self, value):
        return self.backend.cast(self.backend.convert_to_tensor(value), "float32")

    @property
    def num_draws(self):
        """Uniform draws per image: 10 areas, 10 log-ratios, the corner and,
        with `horizontal_flip`, the flip."""
        return 2 * _NUM_ATTEMPTS + 2 + int(self.horizontal_flip)

    def crop_windows(self, draws, height, width):
        """The crop windows (and flips) that `draws` give in `height x width` images.

        The layer's own sampling, for pipelines that crop before decoding (see
        `keras_imsvd.data.streaming_views`): `draws` are float32 uniforms in
        [0, 1) of shape `(N, num_draws)`, read as the layer reads its own.

        Args:
            draws: float32 tensor `(N, num_draws)` of uniforms in [0, 1). Required.
            height: scalar, height of the images. Required.
            width: scalar, width of the images. Required.

        Returns:
            `(boxes, flip)`: float32 `(N, 4)` rows `(top, left, crop_height,
            crop_width)` in whole pixels, and a bool `(N,)` (or `None` without
            `horizontal_flip`).

        Example:

        >>> import numpy as np
        >>> import keras_imsvd
        >>> layer = keras_imsvd.augment.RandomResizedCrop(8, 8)
        >>> draws = np.random.uniform(size=(2, layer.num_draws)).astype("float32")
        >>> boxes, _ = layer.crop_windows(draws, 40, 60)
        >>> tuple(boxes.shape)
        (2, 4)
        """
        draws = self.backend.convert_to_tensor(draws, "float32")
        return self._boxes_from_draws(
            draws, self._as_float(height), self._as_float(width)
        )

    def _random_boxes(self, batch_size, in_h, in_w, seed):
        draws = self.backend.random.uniform(
            (batch_size, self.num_draws), dtype="float32", seed=seed
        )
        return self._boxes_from_draws(draws, in_h, in_w)

    def _boxes_from_draws(self, draws, in_h, in_w):
        ops = self.backend
        numpy = ops.numpy
        low, high = self.scale
        area = in_h * in_w * (low + (high - low) * draws[:, :_NUM_ATTEMPTS])
        low, high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = numpy.exp(
            low + (high - low) * draws[:, _NUM_ATTEMPTS : 2 * _NUM_ATTEMPTS]
        )
        crop_w = numpy.round(numpy.sqrt(area * aspect))  # (N, attempts)
        crop_h = numpy.round(numpy.sqrt(area / aspect))
        fits = ops.cast(
            numpy.logical_and(
                numpy.logical_and(crop_w > 0.0, crop_w <= in_w),
                numpy.logical_and(crop_h > 0.0, crop_h <= in_h),
            ),
            "float32",
        )
        # One-hot of the first attempt that fits; all zeros when none does.
        first = fits * ops.cast(numpy.equal(numpy.cumsum(fits, axis=1), 1.0), "float32")
        found = numpy.sum(first, axis=1) > 0.0  # (N,)
        crop_w = numpy.sum(first * crop_w, axis=1)
        crop_h = numpy.sum(first * crop_h, axis=1)

        fallback_h, fallback_w = self._fallback_size(in_h, in_w)
        crop_h = numpy.where(found, crop_h, fallback_h)
        crop_w = numpy.where(found, crop_w, fallback_w)
        # Integer corner uniform over [0, H - h] x [0, W - w]; centred in fallback.
        corner = draws[:, 2 * _NUM_ATTEMPTS : 2 * _NUM_ATTEMPTS + 2]
        top = numpy.minimum(
            numpy.floor(corner[:, 0] * (in_h - crop_h + 1.0)), in_h - crop_h
        )
        left = numpy.minimum(
            numpy.floor(corner[:, 1] * (in_w - crop_w + 1.0)), in_w - crop_w
        )
        top = numpy.where(found, top, numpy.floor((in_h - crop_h) / 2.0))
        left = numpy.where(found, left, numpy.floor((in_w - crop_w) / 2.0))
        boxes = numpy.stack([top, left, crop_h, crop_w], axis=1)  # (N, 4)
        flip = draws[:, -1] < 0.5 if self.horizontal_flip else None
        return boxes, flip

    def _fallback_size(self, in_h, in_w):
        numpy = self.backend.numpy
        in_ratio = in_w / in_h
        too_tall = in_ratio < self.ratio[0]
        too_wide = in_ratio > self.ratio[1]
        crop_h = numpy.where(too_tall, numpy.round(in_w / self.ratio[0]), in_h)
        crop_w = numpy.where(too_wide, numpy.round(in_h * self.ratio[1]), in_w)
        return crop_h, crop_w

    def _centre_boxes(self, batch_size, in_h, in_w):
        numpy = self.backend.numpy
        target = self.width / self.height
        wider = in_w / in_h > target
        crop_h = numpy.where(wider, in_h, numpy.round(in_w / target))
        crop_w = numpy.where(wider, numpy.round(in_h * target), in_w)
        crop_h = numpy.maximum(numpy.minimum(crop_h, in_h), 1.0)
        crop_w = numpy.maximum(numpy.minimum(crop_w, in_w), 1.0)
        box = numpy.stack(
            [
                numpy.floor((in_h - crop_h) / 2.0),
                numpy.floor((in_w - crop_w) / 2.0),
                crop_h,
                crop_w,
            ]
        )
        return numpy.zeros((batch_size, 1), dtype="float32") + box[None, :]

    def _crop(self, images, transformation, training, interpolation):
        if transformation is None:
            transformation = self.get_random_transformation(images, training=training)
        boxes = self.backend.cast(
            self.backend.convert_to_tensor(transformation["boxes"]), "float32"
        )
        images = self._to_channels_last(images)
        # Separable resampling: rows first, then columns (gathers, no dense maps).
        top, left, crop_h, crop_w = (boxes[:, i] for i in range(4))
        rows = self._resample(images, top, crop_h, self.height, interpolation)
        rows = self.backend.numpy.transpose(rows, (0, 2, 1, 3))  # (N, W, height, C)
        out = self._resample(
            rows, left, crop_w, self.width, interpolation, transformation.get("flip")
        )
        out = self.backend.numpy.transpose(out, (0, 2, 1, 3))  # (N, height, width, C)
        return self._from_channels_last(out)

    def _resample(self, images, start, size, out_size, interpolation, reverse=None):
        """Resamples axis 1 of `images` (N, A, B, C) over [start, start + size).

        Where `reverse` (N,) is true, the output is read backwards (mirrored).
        """
        ops = self.backend
        numpy = ops.numpy
        grid = ops.cast(numpy.arange(out_size), "float32")[None, :] + 0.5  # (1, out)
        if reverse is not None:  # output j samples where j' = out - 1 - j would
            grid = numpy.where(reverse[:, None], float(out_size) - grid, grid)
        step = (size / float(out_size))[:, None]  # (N, 1)
        first = start[:, None]
        last = (start + size - 1.0)[:, None]
        if interpolation == "nearest":
            index = numpy.clip(numpy.floor(first + grid * step), first, last)
            return self._gather(images, index)
        position = numpy.clip(first + grid * step - 0.5, first, last)
        low = numpy.floor(position)  # (N, out)
        high = numpy.minimum(low + 1.0, last)
        weight = ops.cast(position - low, images.dtype)[:, :, None, None]
        below = self._gather(images, low)
        above = self._gather(images, high)
        return below + (above - below) * weight

    def _gather(self, images, index):
        """Takes `images[n, index[n, m]]`: (N, A, B, C), (N, M) -> (N, M, B, C)."""
        ops = self.backend
        numpy = ops.numpy
        shape = ops.core.shape(images)
        length, columns, channels = shape[1], shape[2], shape[3]
        index = ops.cast(index, "int32")
        offsets = numpy.arange(ops.core.shape(index)[0], dtype="int32") * length
        flat = numpy.reshape(index + offsets[:, None], (-1,))
        rows = numpy.take(numpy.reshape(images, (-1, columns, channels)), flat, axis=0)
        return numpy.reshape(rows, (-1, ops.core.shape(index)[1], columns, channels))
