"""MNIST and Fashion-MNIST from their IDX files, as distributed (gzip or not).

    train-images-idx3-ubyte[.gz]  magic 0x00000803, [n, rows, cols] uint8
    train-labels-idx1-ubyte[.gz]  magic 0x00000801, [n] uint8
    t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]: the test split

Validation: a stratified ``validation_fraction`` of the training files.
"""
import gzip
import os
import struct
import zlib

import numpy as np

from resnet_graph.errors import UsageError
from resnet_graph.data import download
from resnet_graph.data.source import Source, train_validation_split

IMAGES, LABELS = 0x803, 0x801
FASHION_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
                 'Ankle boot']


def find(data_dir, stem):
    """The path of ``stem`` or ``stem.gz`` in data_dir; UsageError when neither is there."""
    for name in (stem, stem + '.gz'):
        if os.path.isfile(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    raise UsageError('%s is missing: expected %s or %s.gz in --data_dir (or use --download)'
                     % (os.path.join(data_dir, stem), stem, stem))


def read_idx(path, magic):
    """An IDX file -> uint8 array of the shape its header gives. UsageError naming the file when it is broken."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
        if data[:2] == b'\x1f\x8b':
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise UsageError('%s is not a readable IDX file (%s); download it again' % (path, e))
    dims = magic & 0xff
    header = 4 + 4 * dims
    if len(data) < header or struct.unpack('>I', data[:4])[0] != magic:
        raise UsageError('%s is not an IDX file of the expected kind (magic 0x%08x expected); check the file name'
                         % (path, magic))
    shape = struct.unpack('>%dI' % dims, data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise UsageError('%s is truncated or padded: %d bytes, its header %s asks for %d; download it again'
                         % (path, len(data), list(shape), expected))
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def read_pair(data_dir, prefix):
    """(images uint8 [n, r, c, 1], labels uint8 [n]) of the ``train`` or ``t10k`` files."""
    images_path = find(data_dir, '%s-images-idx3-ubyte' % prefix)
    labels_path = find(data_dir, '%s-labels-idx1-ubyte' % prefix)
    images, labels = read_idx(images_path, IMAGES), read_idx(labels_path, LABELS)
    if len(images) != len(labels):
        raise UsageError('%s holds %d images but %s %d labels' % (images_path, len(images), labels_path, len(labels)))
    if labels.size and labels.max() > 9:
        raise UsageError('%s: label %d at row %d is outside the 10 classes'
                         % (labels_path, labels.max(), int(np.argmax(labels))))
    return images[..., None], labels


def load(name, class_names, data_dir, validation_fraction, split_seed, channels, download_missing):
    data_dir = download.resolve(name, data_dir, download_missing)
    train_images, train_labels = read_pair(data_dir, 'train')
    test_images, test_labels = read_pair(data_dir, 't10k')
    labels = np.concatenate([train_labels, test_labels]).astype(np.int64)
    splits = train_validation_split(labels, len(train_labels), validation_fraction, split_seed)
    return Source(name, np.concatenate([train_images, test_images]), labels, class_names, splits, channels)


def load_mnist(data_dir, validation_fraction, split_seed, channels, download, **unused):
    return load('mnist', [str(d) for d in range(10)], data_dir, validation_fraction, split_seed, channels, download)


def load_fashion_mnist(data_dir, validation_fraction, split_seed, channels, download, **unused):
    return load('fashion_mnist', FASHION_NAMES, data_dir, validation_fraction, split_seed, channels, download)
