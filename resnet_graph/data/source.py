"""The by-id view of a data set that ``DataLoader`` and the pipeline share, and the registry of sources."""
import numpy as np

import config
from resnet_graph.errors import UsageError


class Source(object):
    """A labelled image set, read by id.

    Attributes:
      name: the ``--dataset`` name.
      images: [N, h, w, c] float32 in [0, 1] or uint8 0..255; None for a
        source that decodes its files by id (it overrides ``read``).
      labels: int64 [N], class ids in [0, num_classes).
      class_names: list of num_classes strings.
      splits: dict split name ('train', 'validation', 'test') -> int64 ids.
      channels: what ``fetch`` returns (``--channels``; 0 keeps the data's own).
    """

    def __init__(self, name, images, labels, class_names, splits, channels=0):
        self.name = name
        self.images = images
        self.labels = np.asarray(labels, np.int64)
        self.class_names = list(class_names)
        self.splits = splits
        self._channels = channels or images.shape[-1]

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def channels(self):
        return self._channels

    def read(self, ids):
        """ids int64 [n] -> float32 [n, h, w, c] in [0, 1], c the data's own channel count."""
        images = self.images[ids]
        return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)

    def fetch(self, ids):
        """ids int [n] -> (images float32 [n, h, w, channels] in [0, 1], labels int64 [n])."""
        ids = np.asarray(ids, dtype=np.int64)
        return convert_channels(self.read(ids), self.channels), self.labels[ids]

    def channel_stats(self, limit=10000, chunk=1024):
        """Per-channel (mean, std) of the training split (at most ``limit`` images of it, a fixed sample).

        Returns two lists of ``channels`` floats; std floored at 1e-3. Read in
        chunks, so a large or file-backed source is never held whole.
        """
        ids = self.splits['train']
        if len(ids) > limit:
            ids = np.sort(np.random.RandomState(0).choice(ids, limit, replace=False))
        total, squares, count = 0.0, 0.0, 0
        for start in range(0, len(ids), chunk):
            images = self.fetch(ids[start:start + chunk])[0].astype(np.float64)
            flat = images.reshape(-1, images.shape[-1])
            total, squares, count = total + flat.sum(0), squares + (flat ** 2).sum(0), count + len(flat)
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
        return mean.tolist(), np.maximum(std, 1e-3).tolist()


GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)  # tf.image.rgb_to_grayscale's


def convert_channels(images, channels):
    """float32 [n, h, w, c] with c in 1, 3, 4 -> [n, h, w, channels]: gray<->RGB, alpha dropped or set to 1."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 4:  # drop alpha first
        images, have = images[..., :3], 3
    if have == 3 and channels == 1:
        return (images @ GRAY_WEIGHTS)[..., None].astype(np.float32)
    if have == 1:
        images = np.repeat(images, 3, axis=-1)
    if channels == 4:
        images = np.concatenate([images, np.ones(images.shape[:-1] + (1,), np.float32)], axis=-1)
    return images


def stratified_split(labels, fractions, seed):
    """Splits ids by class with a fixed seed.

    Args:
      labels: int [N].
      fractions: dict split name -> fraction of each class (the rest is 'train').
      seed: the split's own seed (not the run's), so it never changes.
    Returns:
      dict split name -> sorted int64 ids, 'train' included.
    """
    rng = np.random.RandomState(seed)
    parts = {name: [] for name in list(fractions) + ['train']}
    for cls in np.unique(labels):
        ids = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for name, fraction in fractions.items():
            count = int(round(fraction * len(ids)))
            parts[name].append(ids[start:start + count])
            start += count
        parts['train'].append(ids[start:])
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) for name, chunks in parts.items()}


def train_validation_split(labels, num_train, fraction, seed):
    """The split of a set whose first ``num_train`` examples are the official training files.

    Returns dict train / validation (a stratified ``fraction`` of each class of
    the training files, from the split's own ``seed``) / test (the rest: the
    official test files).
    """
    splits = stratified_split(np.asarray(labels)[:num_train], {'validation': fraction}, seed)
    splits['test'] = np.arange(num_train, len(labels), dtype=np.int64)
    return splits


def _load_digits(data_dir, channels, **unused):
    from resnet_graph.data import digits
    source = digits.load()
    source._channels = channels or source._channels
    return source


def _lazy(module, function):
    """A loader that imports its module only when its data set is asked for."""
    def load(data_dir, **options):
        import importlib
        return getattr(importlib.import_module('resnet_graph.data.' + module), function)(data_dir, **options)
    return load


SOURCES = {
    'digits': _load_digits,
    'mnist': _lazy('idx', 'load_mnist'),
    'fashion_mnist': _lazy('idx', 'load_fashion_mnist'),
    'cifar10': _lazy('cifar', 'load_cifar10'),
    'cifar100': _lazy('cifar', 'load_cifar100'),
    'folder': _lazy('files', 'load_folder'),
    'csv': _lazy('files', 'load_csv'),
    'tfrecord': _lazy('tfrecord', 'load_tfrecord'),
}


def load_source(name, data_dir='', **options):
    """Returns the ``Source`` for a ``--dataset`` name; ValueError for an unknown one.

    options: any of ``source_options``' keys and image_size; each source uses the ones
    that apply to it, and those not given are config.py's defaults. Bad data
    raises ``errors.UsageError`` naming the file.
    """
    if name not in SOURCES:
        raise ValueError('unknown dataset %r; valid: %s' % (name, ', '.join(sorted(SOURCES))))
    defaults = dict(source_options(config.RunConfig()), image_size=config.TRAIN['image_size'])
    return SOURCES[name](data_dir, **dict(defaults, **options))


def check_splits(source, fraction, needed=('train', 'validation', 'test')):
    """UsageError naming the split sizes when one of the ``needed`` splits of ``source`` is empty.

    Training validates on the validation split and keeps the best checkpoint by
    it: an empty one would record a best accuracy measured on no image.
    """
    sizes = {name: len(source.splits[name]) for name in ('train', 'validation', 'test')}
    empty = [name for name in needed if not sizes[name]]
    if not empty:
        return
    largest = int(np.bincount(source.labels[source.splits['train']]).max()) if sizes['train'] else 0
    advice = 'more images per class'
    if fraction and empty != ['train']:
        advice = ('a larger --validation_fraction (%s of the largest class, %d images, rounds to none; %.3g would '
                  'take one), %s, or a val/ and test/ tree (val.csv and test.csv)'
                  % (fraction, largest, 1.0 / max(largest, 1), advice) if largest else advice)
    elif fraction:
        advice = 'a smaller --validation_fraction (%s) or %s' % (fraction, advice)
    raise UsageError('the %s split of --dataset %s is empty (train %d, validation %d, test %d images): give %s'
                     % (' and '.join(empty), source.name, sizes['train'], sizes['validation'], sizes['test'], advice))


def source_options(cfg):
    """The ``load_source`` options (a dict) that ``cfg`` (a config.RunConfig) sets."""
    return dict(validation_fraction=cfg.validation_fraction, split_seed=cfg.split_seed, channels=cfg.channels,
                strict=cfg.strict_data, download=cfg.download, max_image_pixels=cfg.max_image_pixels,
                data_roots=cfg.data_roots)
