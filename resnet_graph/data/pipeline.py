"""Preprocessing (one definition for training, evaluation and prediction) and the training pipeline."""
import functools

import numpy as np
import tensorflow as tf

from resnet_graph.errors import stderr_silenced
from resnet_graph.data import augment as augment_lib

v1 = tf.compat.v1


def preprocess(images, image_size, mean, std):
    """Resizes and normalises a batch inside the graph.

    Args:
      images: float32 [N, h, w, c], values in [0, 1].
      image_size: output side S.
      mean, std: per-channel floats (length c) of the training split.
    Returns:
      float32 [N, S, S, c]: bilinear resize, then (x - mean) / std.
    """
    images = tf.image.resize(images, [image_size, image_size], method='bilinear')
    return (images - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def decode(data, channels, max_pixels=None):
    """A scalar string tensor of PNG/JPEG/BMP/GIF/WebP bytes -> float32 [h, w, channels] in [0, 1] (a GIF's first
    frame).

    Formats whose decoder cannot give ``channels`` itself (GIF, BMP and WebP to gray,
    CMYK JPEG to gray, GIF and JPEG to RGBA) are decoded as they are, then
    converted (gray <-> RGB, alpha dropped or set to 1). max_pixels: an image
    whose header says more pixels fails (InvalidArgumentError) before decoding.
    """
    if max_pixels:
        from resnet_graph.data.images import graph_pixels
        pixels = graph_pixels(data)
        check = tf.debugging.assert_less_equal(pixels, tf.constant(int(max_pixels), tf.int64), message=(
            'an image over --max_image_pixels %d pixels; raise --max_image_pixels to read it' % max_pixels))
        with tf.control_dependencies([check]):
            data = tf.identity(data)

    def direct():
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        return tf.image.convert_image_dtype(image, tf.float32)

    def converted():
        image = tf.io.decode_image(data, channels=0, expand_animations=False)
        return to_channels(tf.image.convert_image_dtype(image, tf.float32), channels)

    if channels == 3:  # every decoder gives RGB itself
        image = direct()
    else:
        image = tf.cond(_needs_conversion(data, channels), converted, direct)
    image.set_shape([None, None, channels])
    return image


def _needs_conversion(data, channels):
    """Whether the decoder of these bytes' format refuses ``channels`` (1 or 4): a scalar bool tensor."""
    head = tf.strings.substr(data, 0, 3)
    gif, jpeg = tf.equal(head, b'GIF'), tf.equal(head, b'\xff\xd8\xff')
    webp = tf.logical_and(tf.equal(tf.strings.substr(data, 0, 4), b'RIFF'),
                          tf.equal(tf.strings.substr(data, 8, 4), b'WEBP'))  # gives 3 or 4 channels as stored
    if channels == 4:
        return tf.reduce_any([gif, jpeg, webp])
    bmp = tf.equal(tf.strings.substr(data, 0, 2), b'BM')
    cmyk = tf.cond(jpeg, lambda: tf.equal(tf.image.extract_jpeg_shape(data)[2], 4), lambda: tf.constant(False))
    return tf.reduce_any([gif, bmp, webp, cmyk])


def to_channels(image, channels):
    """float32 [h, w, c] with c in 1..4 (unknown until run) -> [h, w, channels] as ``source.convert_channels``."""
    have = tf.shape(image)[-1]
    rgb = tf.cond(have >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    if channels == 1:
        return tf.cond(have >= 3, lambda: tf.image.rgb_to_grayscale(rgb), lambda: image[..., :1])
    if channels == 4:
        return tf.cond(tf.equal(have, 4), lambda: image, lambda: tf.concat([rgb, tf.ones_like(rgb[..., :1])], -1))
    return rgb


def steps_per_epoch(num_examples, batch_size):
    """Full batches per epoch (the last partial batch is dropped, as in the official trainers)."""
    return max(num_examples // batch_size, 1)


class EpochOrder(object):
    """The training order: epoch e visits the ids in a permutation drawn from (seed, e).

    The order of every step is a function of the step alone, so a resumed run
    sees the same batches as an uninterrupted one.
    """

    def __init__(self, ids, batch_size, seed):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = steps_per_epoch(len(self.ids), batch_size)

    @functools.lru_cache(maxsize=2)
    def epoch_ids(self, epoch):
        """The ids of one epoch, shuffled: int64 [len(ids)]."""
        return np.random.RandomState([self.seed, epoch]).permutation(self.ids)

    def batch_ids(self, step):
        """The ids of training step ``step``: int64 [batch_size]."""
        epoch, index = divmod(int(step), self.steps_per_epoch)
        ids = self.epoch_ids(epoch)
        if len(ids) < self.batch_size:  # fewer examples than one batch: wrap around
            ids = np.resize(ids, self.batch_size)
        return ids[index * self.batch_size:(index + 1) * self.batch_size]


def train_dataset(fetch, order, start_step, end_step, image_size, mean, std, prefetch=2, augment='none'):
    """A ``tf.data.Dataset`` of training batches for steps [start_step, end_step).

    Args:
      fetch: ids int64 [n] -> (images float32 [n, h, w, c] in [0, 1], labels int64 [n]).
      order: an ``EpochOrder``.
      augment: an ``augment.POLICIES`` name, drawn from (order.seed, step).
    Yields:
      (images float32 [B, S, S, c], labels int64 [B]), prefetched so the
      training step never waits on Python.
    """
    sample, _ = fetch(order.batch_ids(0)[:1])
    shape = [order.batch_size] + list(sample.shape[1:])

    def load(step):
        images, labels = fetch(order.batch_ids(step))
        return images.astype(np.float32), labels.astype(np.int64)

    def to_tensors(step):
        images, labels = tf.numpy_function(load, [step], [tf.float32, tf.int64], stateful=False)
        images.set_shape(shape)
        labels.set_shape(shape[:1])
        images = preprocess(images, image_size, mean, std)
        return augment_lib.apply(images, augment, tf.stack([tf.constant(order.seed, tf.int64), step])), labels

    dataset = tf.data.Dataset.range(start_step, end_step)
    return dataset.map(to_tensors, num_parallel_calls=2, deterministic=True).prefetch(prefetch)


class Preprocessor(object):
    """Runs ``preprocess`` (and image decoding) outside any caller's graph.

    Holds its own graph and session, so it works whatever graph is the
    caller's default.
    """

    def __init__(self, image_size, mean, std, channels, max_pixels=None):
        self.channels = channels
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._raw = v1.placeholder(tf.float32, [None, None, None, channels])
            self._out = preprocess(self._raw, image_size, mean, std)
            self._bytes = v1.placeholder(tf.string, [])
            self._decoded = decode(self._bytes, channels, max_pixels)
        self._session = v1.Session(graph=self._graph)

    def __call__(self, images):
        """images float [N, h, w, c] in [0, 1] -> float32 [N, S, S, c], normalised."""
        return self._session.run(self._out, {self._raw: images})

    def decode(self, data):
        """Encoded PNG/JPEG/BMP/GIF bytes -> float32 [h, w, channels] in [0, 1].

        Raises tf.errors.InvalidArgumentError when the bytes are not an image.
        """
        with stderr_silenced():  # libjpeg's own line for a damaged JPEG: the caller says what was wrong
            return self._session.run(self._decoded, {self._bytes: data})

    def close(self):
        self._session.close()
