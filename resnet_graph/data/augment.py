"""Training augmentation (``--augment``), inside the graph, as one ``crop_and_resize`` per batch.

Policies:
  none      the images as they are.
  cifar     pad 4 pixels (zeros, i.e. the mean after normalisation), random
            S x S crop, random horizontal flip.
  imagenet  random-resized crop (8 %..100 % of the area, aspect 3/4..4/3)
            resized back to S x S, random horizontal flip.
  affine    small rotations (+-15 degrees), shifts (+-10 % of the side), zoom
            (0.9..1.1) and horizontal flip, the edge pixels extending into the
            uncovered border (Keras ImageDataGenerator's 'nearest' fill), as in
            the CIFAR-10 tutorials of Keras.

The random numbers are stateless, drawn from (run seed, step): a step gets the
same augmentation whether the run was resumed or not.
"""
import tensorflow as tf

POLICIES = ('none', 'cifar', 'imagenet', 'affine')
PAD = 4
AFFINE = dict(degrees=15.0, shift=0.1, zoom=0.1)


def _flip(boxes, flip):
    """Swaps x1 and x2 of the boxes where ``flip`` (crop_and_resize then mirrors the crop)."""
    y1, x1, y2, x2 = tf.unstack(boxes, axis=1)
    return tf.stack([y1, tf.where(flip, x2, x1), y2, tf.where(flip, x1, x2)], axis=1)


def _cifar_boxes(batch, size, seed):
    """Boxes of S x S crops of the padded (S + 2 PAD) image, in its normalised coordinates."""
    offsets = tf.random.stateless_uniform([batch, 2], seed, 0, 2 * PAD + 1, dtype=tf.int32)
    last = tf.cast(size + 2 * PAD - 1, tf.float32)
    start = tf.cast(offsets, tf.float32) / last
    end = tf.cast(offsets + size - 1, tf.float32) / last
    return tf.concat([start[:, :1], start[:, 1:], end[:, :1], end[:, 1:]], axis=1)


def _imagenet_boxes(batch, seed):
    """Random-resized-crop boxes: area fraction in [0.08, 1], aspect ratio (w/h) log-uniform in [3/4, 4/3]."""
    draws = tf.random.stateless_uniform([batch, 4], seed)
    area = 0.08 + 0.92 * draws[:, 0]
    log_ratio = tf.math.log(3 / 4) + draws[:, 1] * (tf.math.log(4 / 3) - tf.math.log(3 / 4))
    ratio = tf.exp(log_ratio)
    height = tf.minimum(tf.sqrt(area / ratio), 1.0)
    width = tf.minimum(tf.sqrt(area * ratio), 1.0)
    top = draws[:, 2] * (1.0 - height)
    left = draws[:, 3] * (1.0 - width)
    return tf.stack([top, left, top + height, left + width], axis=1)


def affine_transforms(angle, zoom, shift_x, shift_y, flip, size):
    """Per-image projective transforms (output pixel -> input pixel) for ImageProjectiveTransformV3.

    Args:
      angle: float32 [B] rotation in radians about the image centre.
      zoom: float32 [B] scale (> 1 enlarges the content).
      shift_x, shift_y: float32 [B] translations of the content in pixels.
      flip: bool [B], mirror horizontally.
      size: side S of the square images.
    Returns:
      float32 [B, 8]: rows (a0, a1, a2, b0, b1, b2, 0, 0) with
      input_x = a0 x + a1 y + a2, input_y = b0 x + b1 y + b2.
    """
    centre = (size - 1) / 2.0
    mirror = tf.where(flip, -1.0, 1.0)
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1 = cos * mirror, -sin * mirror
    b0, b1 = sin, cos
    a2 = centre - a0 * centre - a1 * centre - shift_x
    b2 = centre - b0 * centre - b1 * centre - shift_y
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def _affine(images, seed):
    size = images.shape[1]
    draws = tf.random.stateless_uniform([tf.shape(images)[0], 5], seed, -1.0, 1.0)
    transforms = affine_transforms(draws[:, 0] * AFFINE['degrees'] * 3.141592653589793 / 180.0,
                                   1.0 + draws[:, 1] * AFFINE['zoom'], draws[:, 2] * AFFINE['shift'] * size,
                                   draws[:, 3] * AFFINE['shift'] * size, draws[:, 4] < 0.0, size)
    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=[size, size],
                                                 fill_value=0.0, interpolation='BILINEAR', fill_mode='NEAREST')


def apply(images, policy, seed):
    """Augments a training batch.

    Args:
      images: float32 [B, S, S, c] (already resized and normalised).
      policy: one of POLICIES.
      seed: int [2] tensor (run seed, step).
    Returns:
      float32 [B, S, S, c].
    """
    if policy == 'none':
        return images
    if policy not in POLICIES:
        raise ValueError('augment policy %r unknown; valid: %s' % (policy, ', '.join(POLICIES)))
    size = images.shape[1]
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    if policy == 'affine':
        return _affine(images, seeds[0])
    if policy == 'cifar':
        images = tf.pad(images, [[0, 0], [PAD, PAD], [PAD, PAD], [0, 0]])
        boxes = _cifar_boxes(batch, size, seeds[0])
    else:
        boxes = _imagenet_boxes(batch, seeds[0])
    flip = tf.random.stateless_uniform([batch], seeds[1]) < 0.5
    return tf.image.crop_and_resize(images, _flip(boxes, flip), tf.range(batch), [size, size])
