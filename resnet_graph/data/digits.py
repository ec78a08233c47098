"""The embedded default data set: 1,797 8x8 handwritten digits.

UCI "Optical Recognition of Handwritten Digits" (Alpaydin and Kaynak, 1998,
CC BY 4.0), as shipped by scikit-learn; extracted once by
``scripts/extract_digits.py`` into ``digits.npz`` beside this file.
"""
import os

import numpy as np

import config
from resnet_graph.data.source import Source, stratified_split

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'digits.npz')
MAX_INK = 16.0  # pixel values are ink counts 0..16


def load():
    """Returns the digits as a ``Source`` with the fixed stratified split of ``config.DIGITS_SPLIT``."""
    with np.load(PATH, allow_pickle=False) as arrays:
        images = arrays['images'].astype(np.float32)[..., None] / MAX_INK
        labels = arrays['labels'].astype(np.int64)
    split = dict(config.DIGITS_SPLIT)
    seed = split.pop('seed')
    return Source('digits', images, labels, [str(d) for d in range(10)], stratified_split(labels, split, seed))
