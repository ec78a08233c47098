"""CIFAR-10 and CIFAR-100, "python version" (pickled batches) or binary version, as distributed.

    cifar-10-batches-py/   data_batch_1..5, test_batch, batches.meta
    cifar-100-python/      train, test, meta
    cifar-10-batches-bin/  data_batch_1..5.bin, test_batch.bin, batches.meta.txt   (3073-byte records)
    cifar-100-binary/      train.bin, test.bin, fine_label_names.txt              (3074-byte records)

The folders may also be ``--data_dir`` itself. Pickles are read by a
restricted unpickler that admits only the numpy array reconstruction those
files contain: any other reference (a payload) is refused and never run.
Validation: a stratified ``validation_fraction`` of the training batches.
"""
import glob
import os
import pickle
import re

import numpy as np

from resnet_graph.errors import UsageError
from resnet_graph.data import download as download_lib
from resnet_graph.data.source import Source, train_validation_split

PIXELS = 3072  # 3 planes (R, G, B) of 32 x 32, row-major
LAYOUTS = {  # name -> (python folder, train files, test file, meta file, label key, names key,
             #          binary folder, label bytes per record, names file, classes)
    'cifar10': ('cifar-10-batches-py', 'data_batch_[0-9]', 'test_batch', 'batches.meta', b'labels', b'label_names',
                'cifar-10-batches-bin', 1, 'batches.meta.txt', 10),
    'cifar100': ('cifar-100-python', 'train', 'test', 'meta', b'fine_labels', b'fine_label_names',
                 'cifar-100-binary', 2, 'fine_label_names.txt', 100),
}


def _reconstruct():
    from numpy._core import multiarray
    return multiarray._reconstruct


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, strings, numbers and numpy arrays; any other global is refused."""

    ALLOWED = {
        ('numpy.core.multiarray', '_reconstruct'): _reconstruct,
        ('numpy._core.multiarray', '_reconstruct'): _reconstruct,
        ('numpy', 'ndarray'): lambda: np.ndarray,
        ('numpy', 'dtype'): lambda: np.dtype,
        ('_codecs', 'encode'): lambda: __import__('codecs').encode,  # how Python 3 pickles bytes at protocol 2
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError('it refers to %s.%s, which a CIFAR batch never contains (refused, not run)'
                                         % (module, name))
        return self.ALLOWED[(module, name)]()


def unpickle(path):
    """A CIFAR pickle -> dict with bytes keys. UsageError naming the file for anything else."""
    try:
        with open(path, 'rb') as f:
            obj = RestrictedUnpickler(f, encoding='bytes').load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OSError) as e:
        raise UsageError('%s is not a CIFAR python batch: %s' % (path, e))
    if not isinstance(obj, dict):
        raise UsageError('%s is not a CIFAR python batch: it holds a %s, not a dict' % (path, type(obj).__name__))
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def _to_images(rows):
    """uint8 [n, 3072] (R, G, B planes) -> uint8 [n, 32, 32, 3]."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _python_batch(path, label_key):
    batch = unpickle(path)
    data, labels = batch.get(b'data'), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise UsageError('%s: %r is not a uint8 [n, 3072] array' % (path, b'data'))
    if labels is None or len(labels) != len(data):
        raise UsageError('%s: %r missing or not one label per image' % (path, label_key))
    return _to_images(data), np.asarray(labels, np.int64)


def _binary_batch(path, label_bytes):
    record = label_bytes + PIXELS
    size = os.path.getsize(path)
    if size == 0 or size % record:
        raise UsageError('%s has %d bytes, not a multiple of the %d-byte CIFAR record; download it again'
                         % (path, size, record))
    rows = np.fromfile(path, np.uint8).reshape(-1, record)
    return _to_images(rows[:, label_bytes:]), rows[:, label_bytes - 1].astype(np.int64)


def _batch_number(path):
    match = re.search(r'(\d+)(\.bin)?$', os.path.basename(path))
    return int(match.group(1)) if match else 0


def _find(data_dir, folder, pattern):
    for base in (os.path.join(data_dir, folder), data_dir):
        found = sorted(glob.glob(os.path.join(base, pattern)), key=_batch_number)
        if found:
            return found
    return []


def _read(name, data_dir):
    """-> (train images, train labels, test images, test labels, class names) from whichever version is there."""
    folder, train_glob, test_name, meta, label_key, names_key, bin_folder, label_bytes, names_file, classes = \
        LAYOUTS[name]
    train = _find(data_dir, folder, train_glob)
    if train:
        read = lambda path: _python_batch(path, label_key)  # noqa: E731
        test, meta_paths = _find(data_dir, folder, test_name), _find(data_dir, folder, meta)
        names = [n.decode() if isinstance(n, bytes) else str(n)
                 for n in unpickle(meta_paths[0]).get(names_key, [])] if meta_paths else []
    else:
        train = _find(data_dir, bin_folder, 'data_batch_*.bin' if name == 'cifar10' else 'train.bin')
        read = lambda path: _binary_batch(path, label_bytes)  # noqa: E731
        test, names_paths = _find(data_dir, bin_folder, test_name + '.bin'), _find(data_dir, bin_folder, names_file)
        names = [line.strip() for line in open(names_paths[0]) if line.strip()] if names_paths else []
    if not train or not test:
        raise UsageError('no %s batches in %s: expected %s/ (python version) or %s/ (binary version), or their files '
                         'directly in --data_dir (or use --download)' % (name, data_dir, folder, bin_folder))
    parts = [read(path) + (path,) for path in train + test]
    for images, labels, path in parts:
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if len(bad):
            raise UsageError('%s: label %d of record %d is outside the %d classes' % (path, labels[bad[0]], bad[0],
                                                                                      classes))
    n_train = len(train)
    stack = lambda chosen, i: np.concatenate([p[i] for p in chosen])  # noqa: E731
    names = names if len(names) == classes else [str(c) for c in range(classes)]
    return stack(parts[:n_train], 0), stack(parts[:n_train], 1), stack(parts[n_train:], 0), \
        stack(parts[n_train:], 1), names


def load(name, data_dir, validation_fraction, split_seed, channels, download, **unused):
    data_dir = download_lib.resolve(name, data_dir, download)
    train_x, train_y, test_x, test_y, names = _read(name, data_dir)
    labels = np.concatenate([train_y, test_y])
    splits = train_validation_split(labels, len(train_y), validation_fraction, split_seed)
    return Source(name, np.concatenate([train_x, test_x]), labels, names, splits, channels)


def load_cifar10(data_dir, **options):
    return load('cifar10', data_dir, **options)


def load_cifar100(data_dir, **options):
    return load('cifar100', data_dir, **options)
