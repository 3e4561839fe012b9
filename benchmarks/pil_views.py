"""Per-image PIL view pipelines: the baseline of `augment_speed.py`.

torchvision cannot be installed beside torch 2.13 here, so this module applies
the published torchvision transforms the way torchvision applies them to PIL
images, with Pillow and NumPy only:

- `RandomResizedCrop(size, scale, ratio=(3/4, 4/3))`: torchvision's
  `get_params` (10 attempts, then a centre crop), then `crop` + `resize`;
- `RandomHorizontalFlip()`;
- `RandomApply([ColorJitter(b, c, s, h)], p=0.8)`: the four adjustments in a
  random order with `ImageEnhance.Brightness/Contrast/Color` and a hue shift
  in HSV, as `torchvision.transforms.functional_pil`;
- `RandomGrayscale(p=0.2)`: `convert("L")` back to three channels;
- `GaussianBlur` of the Barlow Twins code: `ImageFilter.GaussianBlur` with a
  radius in [0.1, 2];
- `Solarization`: `ImageOps.solarize` (threshold 128);
- `ToTensor()`: float32 in [0, 1] (done by the caller, see `augment_speed.py`).
"""

import math
import random

import numpy as np
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageFilter
from PIL import ImageOps


def random_resized_crop(image, size, scale, ratio=(3 / 4, 4 / 3), resample=None):
    """torchvision's `RandomResizedCrop` on a PIL image."""
    width, height = image.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = random.randint(0, height - h)
            left = random.randint(0, width - w)
            break
    else:  # centre crop at the nearest allowed ratio
        in_ratio = width / height
        if in_ratio < ratio[0]:
            w, h = width, int(round(width / ratio[0]))
        elif in_ratio > ratio[1]:
            h, w = height, int(round(height * ratio[1]))
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    crop = image.crop((left, top, left + w, top + h))
    return crop.resize((size, size), resample or Image.BILINEAR)


def _adjust_hue(image, factor):
    h, s, v = image.convert("HSV").split()
    hue = np.asarray(h, dtype=np.uint8)
    with np.errstate(over="ignore"):
        hue = hue + np.uint8(int(factor * 255) % 256)
    h = Image.fromarray(hue, "L")
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def color_jitter(image, brightness, contrast, saturation, hue):
    """torchvision's `ColorJitter` on a PIL image (random order)."""
    adjustments = []
    if brightness:
        f = random.uniform(1 - brightness, 1 + brightness)
        adjustments.append(lambda im, f=f: ImageEnhance.Brightness(im).enhance(f))
    if contrast:
        f = random.uniform(1 - contrast, 1 + contrast)
        adjustments.append(lambda im, f=f: ImageEnhance.Contrast(im).enhance(f))
    if saturation:
        f = random.uniform(1 - saturation, 1 + saturation)
        adjustments.append(lambda im, f=f: ImageEnhance.Color(im).enhance(f))
    if hue:
        f = random.uniform(-hue, hue)
        adjustments.append(lambda im, f=f: _adjust_hue(im, f))
    random.shuffle(adjustments)
    for adjust in adjustments:
        image = adjust(image)
    return image


def view(
    image,
    size,
    scale,
    jitter,
    blur_rate=0.0,
    solarize_rate=0.0,
    resample=None,
):
    """One augmented view of a PIL image, as a uint8 array `(size, size, 3)`."""
    image = random_resized_crop(image, size, scale, resample=resample)
    if random.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    if random.random() < 0.8:
        image = color_jitter(image, *jitter)
    if random.random() < 0.2:
        image = image.convert("L").convert("RGB")
    if random.random() < blur_rate:
        image = image.filter(ImageFilter.GaussianBlur(random.uniform(0.1, 2.0)))
    if random.random() < solarize_rate:
        image = ImageOps.solarize(image, 128)
    return np.asarray(image)


def cifar_pair(image):
    """The two CIFAR-10 views (same distribution), torchvision defaults."""
    args = (32, (0.2, 1.0), (0.4, 0.4, 0.4, 0.1))
    return view(image, *args), view(image, *args)


def imagenet_pair(image, size=224):
    """The asymmetric ImageNet views of the Barlow Twins / IMSVD code (bicubic)."""
    jitter = (0.4, 0.4, 0.2, 0.1)
    first = view(image, size, (0.08, 1.0), jitter, 1.0, 0.0, Image.BICUBIC)
    second = view(image, size, (0.08, 1.0), jitter, 0.1, 0.2, Image.BICUBIC)
    return first, second
