"""The embedded digits, the by-id DataLoader and the training pipeline's order."""
import numpy as np
import tensorflow as tf

from data_loader import DataLoader
from resnet_graph.data import load_source
from resnet_graph.data.pipeline import EpochOrder

v1 = tf.compat.v1


def test_digits_split_is_fixed_stratified_and_disjoint():
    source = load_source('digits')
    assert source.images.shape == (1797, 8, 8, 1) and source.images.dtype == np.float32
    assert source.images.min() == 0.0 and source.images.max() == 1.0
    splits = source.splits
    assert [len(splits[s]) for s in ('train', 'validation', 'test')] == [1259, 269, 269]
    everything = np.concatenate([splits['train'], splits['validation'], splits['test']])
    assert sorted(everything.tolist()) == list(range(1797))
    for name in ('validation', 'test'):
        counts = np.bincount(source.labels[splits[name]], minlength=10)
        assert counts.min() >= 26 and counts.max() <= 28, counts  # 15 % of 174..183 per class
    again = load_source('digits').splits
    assert all(np.array_equal(splits[k], again[k]) for k in splits)


def test_get_batch_data_resizes_and_normalises_with_training_statistics():
    loader = DataLoader(image_size=24)
    images, labels = loader.get_batch_data(loader.train_ids)
    assert images.shape == (1259, 24, 24, 1) and images.dtype == np.float32
    assert labels.dtype == np.int64 and labels.shape == (1259,)
    # Bilinear resizing keeps the mean, so the training split comes out centred.
    assert abs(images.mean()) < 0.05
    some, some_labels = loader.get_batch_data([5, 3, 5])
    np.testing.assert_array_equal(some[0], some[2])
    np.testing.assert_array_equal(some_labels, loader.source.labels[[5, 3, 5]])
    given = DataLoader(image_size=24, mean=[0.5], std=[2.0]).get_batch_data([3])[0]
    raw = tf.image.resize(loader.source.images[[3]], [24, 24]).numpy()
    np.testing.assert_allclose(given, (raw - 0.5) / 2.0, atol=1e-6)


def test_epoch_order_is_a_function_of_the_step():
    ids = np.arange(100, 200)
    order, other = EpochOrder(ids, 32, seed=7), EpochOrder(ids, 32, seed=7)
    assert order.steps_per_epoch == 3
    epoch0 = np.concatenate([order.batch_ids(s) for s in range(3)])
    assert len(set(epoch0.tolist())) == 96 and set(epoch0.tolist()) <= set(ids.tolist())
    np.testing.assert_array_equal(order.batch_ids(4), other.batch_ids(4))
    assert not np.array_equal(order.batch_ids(0), order.batch_ids(3))  # a new permutation each epoch
    assert not np.array_equal(order.batch_ids(0), EpochOrder(ids, 32, seed=8).batch_ids(0))


def test_pipeline_started_mid_run_yields_the_same_batches():
    loader = DataLoader(image_size=16)

    def labels_of(start, end):
        with tf.Graph().as_default():
            batch = v1.data.make_one_shot_iterator(loader.train_dataset(32, 3, start, end)).get_next()
            with v1.Session() as sess:
                return [sess.run(batch[1]) for _ in range(end - start)]

    whole, resumed = labels_of(0, 45), labels_of(37, 45)
    for a, b in zip(whole[37:], resumed):
        np.testing.assert_array_equal(a, b)
    images_order = EpochOrder(loader.train_ids, 32, 3)
    np.testing.assert_array_equal(whole[40], loader.source.labels[images_order.batch_ids(40)])
