"""``DataLoader``: batches of any data source by id (the legacy contract).

    loader = DataLoader()                      # the embedded digits
    images, labels = loader.get_batch_data(loader.train_ids[:64])

``get_batch_data`` resizes and normalises exactly as the training pipeline
does (``resnet_graph.data.pipeline.preprocess``), with the per-channel
statistics of the training split unless the run's are given.
"""
import numpy as np

import config
from resnet_graph.data import load_source
from resnet_graph.data import pipeline


class DataLoader(object):
    """Fetches preprocessed image batches by id.

    Args:
      dataset: a ``--dataset`` name.
      data_dir: where that data set lives (unused by the embedded digits).
      image_size: side S of the square images the network sees.
      mean, std: per-channel normalisation; None computes them on the training split.
      augment: the training pipeline's augmentation policy (``resnet_graph.data.augment``).
      source_options: for ``load_source`` (validation_fraction, split_seed, channels, strict, download).
    """

    def __init__(self, dataset=config.TRAIN['dataset'], data_dir='', image_size=config.height, mean=None, std=None,
                 augment='none', **source_options):
        self.source = load_source(dataset, data_dir, image_size=image_size, **source_options)
        self.image_size = image_size
        self.augment = augment
        if mean is None or std is None:
            mean, std = self.source.channel_stats()
        self.mean, self.std = list(mean), list(std)
        self._preprocessor = None

    @property
    def num_classes(self):
        return self.source.num_classes

    @property
    def channels(self):
        return self.source.channels

    @property
    def train_ids(self):
        return self.source.splits['train']

    @property
    def validation_ids(self):
        return self.source.splits['validation']

    @property
    def test_ids(self):
        return self.source.splits['test']

    @property
    def preprocessor(self):
        if self._preprocessor is None:
            self._preprocessor = pipeline.Preprocessor(self.image_size, self.mean, self.std, self.channels)
        return self._preprocessor

    def get_batch_data(self, ids):
        """ids int [N] -> (images float32 [N, S, S, C] normalised, labels int64 [N])."""
        images, labels = self.source.fetch(ids)
        return self.preprocessor(images), np.asarray(labels, np.int64)

    def batches(self, ids, batch_size):
        """Yields (images, labels) batches of ``get_batch_data`` over ``ids`` in order (last one partial)."""
        ids = np.asarray(ids)
        for start in range(0, len(ids), batch_size):
            yield self.get_batch_data(ids[start:start + batch_size])

    def train_dataset(self, batch_size, seed, start_step, end_step):
        """The shuffled, prefetched ``tf.data`` pipeline of training batches (see ``pipeline.train_dataset``)."""
        order = pipeline.EpochOrder(self.train_ids, batch_size, seed)
        if hasattr(self.source, 'train_dataset'):  # a streamed source (tfrecord) brings its own pipeline
            return self.source.train_dataset(order, start_step, end_step, self.image_size, self.mean, self.std,
                                             augment=self.augment)
        return pipeline.train_dataset(self.source.fetch, order, start_step, end_step, self.image_size,
                                      self.mean, self.std, augment=self.augment)
