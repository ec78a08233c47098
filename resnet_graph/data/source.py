"""The by-id view of a data set that ``DataLoader`` and the pipeline share."""
import numpy as np


class Source(object):
    """A labelled image set held as arrays.

    Attributes:
      name: the ``--dataset`` name.
      images: float32 [N, h, w, c], values in [0, 1].
      labels: int64 [N], class ids in [0, num_classes).
      class_names: list of num_classes strings.
      splits: dict split name ('train', 'validation', 'test') -> int64 ids.
    """

    def __init__(self, name, images, labels, class_names, splits):
        self.name = name
        self.images = images
        self.labels = labels
        self.class_names = list(class_names)
        self.splits = splits

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def channels(self):
        return self.images.shape[-1]

    def fetch(self, ids):
        """ids int [n] -> (images float32 [n, h, w, c] in [0, 1], labels int64 [n])."""
        ids = np.asarray(ids, dtype=np.int64)
        return self.images[ids], self.labels[ids]


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


def _load_digits(data_dir):
    from resnet_graph.data import digits
    return digits.load()


SOURCES = {'digits': _load_digits}


def load_source(name, data_dir=''):
    """Returns the ``Source`` for a ``--dataset`` name; ValueError for an unknown one."""
    if name not in SOURCES:
        raise ValueError('unknown dataset %r; valid: %s' % (name, ', '.join(sorted(SOURCES))))
    return SOURCES[name](data_dir)
