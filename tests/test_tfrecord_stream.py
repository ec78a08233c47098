"""Streamed TFRecord training: corrupt and truncated images inside the records, and memory over epochs."""
import json
import os
import re

import numpy as np
import pytest

from conftest import error_lines, run_cli

pytestmark = pytest.mark.slow  # several-epoch streamed training runs

SIZE = 8
NUM_TRAIN = 12  # records in train-00000-of-00001
BAD = {3: 'corrupt', 8: 'truncated'}  # record number -> what is wrong with its image/encoded bytes
REASON = {3: 'Invalid PNG. Failed to initialize decoder.',  # the decoder's words for each, as our line gives them
          8: 'cut short or damaged: Invalid JPEG data or crop window.'}
TRAIN_FILE = 'train-00000-of-00001'


def example(encoded, label):
    """A serialized tf.train.Example in the official-models ImageNet layout."""
    import tensorflow as tf
    feature = {'image/encoded': tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
               'image/class/label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_records(path, rows):
    """rows: [(encoded bytes, label)] -> one TFRecord file at path."""
    import tensorflow as tf
    with tf.io.TFRecordWriter(str(path)) as writer:
        for encoded, label in rows:
            writer.write(example(encoded, label))


def broken(kind, rng):
    """Encoded bytes that do not decode: a PNG signature over zeros, or a JPEG cut in half."""
    import tensorflow as tf
    if kind == 'corrupt':
        return b'\x89PNG\r\n\x1a\n' + b'\0' * 40
    jpeg = tf.io.encode_jpeg(rng.randint(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)).numpy()
    return jpeg[:len(jpeg) // 2]


def make_set(root, seed=0):
    """train-00000-of-00001 (NUM_TRAIN records, BAD among them) and validation-00000-of-00001 (6 good records)
    of 8x8 PNGs, labels 0..2; returns {record number: (pixels or None, label)} of the training file."""
    import tensorflow as tf
    rng = np.random.RandomState(seed)
    written, rows = {}, []
    for r in range(NUM_TRAIN):
        pixels, label = rng.randint(0, 256, (SIZE, SIZE, 3)).astype(np.uint8), r % 3
        if r in BAD:
            rows.append((broken(BAD[r], rng), label))
            written[r] = (None, label)
        else:
            rows.append((tf.io.encode_png(pixels).numpy(), label))
            written[r] = (pixels, label)
    write_records(os.path.join(str(root), TRAIN_FILE), rows)
    write_records(os.path.join(str(root), 'validation-00000-of-00001'),
                  [(tf.io.encode_png(rng.randint(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)).numpy(), k % 3)
                   for k in range(6)])
    return written


def test_decode_batch_replaces_what_does_not_decode_by_the_first_good_image():
    import tensorflow as tf
    from resnet_graph.data.tfrecord import decode_batch
    rng = np.random.RandomState(1)
    pixels = [rng.randint(0, 256, (SIZE, SIZE, 3)).astype(np.uint8) for _ in range(2)]
    encoded = [broken('corrupt', rng), tf.io.encode_png(pixels[0]).numpy(), broken('truncated', rng),
               tf.io.encode_png(pixels[1]).numpy()]
    with tf.Graph().as_default():
        out = decode_batch(tf.constant(encoded), 3, SIZE)
        everything_bad = decode_batch(tf.constant(encoded[::2]), 3, SIZE)
        with tf.compat.v1.Session() as sess:
            (images, ok), (nothing, none_ok) = sess.run([out, everything_bad])
    assert ok.tolist() == [False, True, False, True] and none_ok.tolist() == [False, False]
    expected = np.stack([pixels[0], pixels[0], pixels[0], pixels[1]]) / 255.0
    np.testing.assert_allclose(images, expected, atol=1e-6)
    np.testing.assert_array_equal(nothing, np.zeros((2, SIZE, SIZE, 3)))


def test_streamed_batch_holds_the_good_records_and_first_good_copies_with_its_label(tmp_path, capsys):
    import tensorflow as tf
    from data_loader import DataLoader
    written = make_set(tmp_path)
    loader = DataLoader('tfrecord', str(tmp_path), SIZE, mean=[0.0] * 3, std=[1.0] * 3, validation_fraction=0.25,
                        split_seed=0)
    train = loader.train_ids.tolist()
    assert set(BAD) <= set(train) and len(train) == 9  # 9 training records: 3 per class, both bad ones among them
    with tf.Graph().as_default():  # batch = the whole training split, so one batch holds every training record
        batch = tf.compat.v1.data.make_one_shot_iterator(loader.train_dataset(len(train), 5, 0, 2)).get_next()
        with tf.compat.v1.Session() as sess:
            epochs = [sess.run(batch), sess.run(batch)]
    for images, labels in epochs:
        found = []
        for image, label in zip(images, labels):
            match = [r for r in train if r not in BAD and np.array_equal(np.round(image * 255), written[r][0])]
            assert len(match) == 1 and label == written[match[0]][1]
            found.append(match[0])
        first = found[0]  # the batch's first record is good or a copy of its first good one: either way found[0]
        assert sorted(set(found)) == sorted(set(train) - set(BAD))
        assert found.count(first) == 1 + len(BAD) and all(found.count(r) == 1 for r in set(found) - {first})
    counted = re.findall(r'skipped corrupt image (.*) \((\d) skipped so far; --strict_data makes this an error\)',
                         capsys.readouterr().err)  # each once, as by id, though both epochs met them
    assert sorted(name for name, _ in counted) == ['%s record %d' % (os.path.join(str(tmp_path), TRAIN_FILE), r)
                                                   for r in sorted(BAD)]
    assert sorted(count for _, count in counted) == ['1', '2']  # one batch held both: counted one by one
    assert sorted(loader.source.skipped) == sorted(BAD)


def test_strict_data_is_checked_as_records_are_read_not_by_decoding_the_set_at_load(tmp_path):
    from resnet_graph.errors import UsageError
    from resnet_graph.data import load_source
    make_set(tmp_path)
    source = load_source('tfrecord', str(tmp_path), image_size=SIZE, strict=True)  # nothing decoded yet
    assert source.fetch([0, 1])[0].shape == (2, SIZE, SIZE, 3)
    for r in BAD:
        with pytest.raises(UsageError) as e:
            source.fetch([0, r])
        assert str(e.value) == ('%s record %d is not a readable PNG, JPEG, GIF, BMP or WebP image (%s); remove it or '
                                'run without --strict_data to skip it'
                                % (os.path.join(str(tmp_path), TRAIN_FILE), r, REASON[r]))
    assert not source.skipped


def test_training_skips_and_counts_bad_records_and_strict_data_stops_with_the_steps_saved(tmp_path):
    (tmp_path / 'data').mkdir()
    make_set(tmp_path / 'data')
    run = str(tmp_path / 'run')
    common = ['--dataset', 'tfrecord', '--data_dir', tmp_path / 'data', '--validation_fraction', '0.25',
              '--split_seed', '0', '--depth', '8', '--image_size', SIZE, '--batch_size', 2, '--log_every', 4,
              '--model_dir', run]  # 9 training records: 4 steps per epoch
    first = run_cli('train', *common + ['--epochs', 1])
    assert first.returncode == 0, first.stderr
    assert '2 corrupt images were skipped, each replaced by a good one of its batch' in first.stdout
    resumed = run_cli('train', *common + ['--epochs', 2])  # the run's mean and std: only the stream reads them now
    assert resumed.returncode == 0, resumed.stderr
    names = ['%s record %d' % (os.path.join(str(tmp_path / 'data'), TRAIN_FILE), r) for r in sorted(BAD)]
    assert sorted(re.findall(r'skipped corrupt image (.*) \(\d skipped so far', resumed.stderr)) == names
    assert '2 corrupt images were skipped' in resumed.stdout and 'step 8/8' in resumed.stdout
    strict = run_cli('train', *common + ['--epochs', 3, '--strict_data'])
    assert strict.returncode == 2
    lines = error_lines(strict.stderr)
    assert len(lines) == 1 and 'Traceback' not in strict.stderr
    match = re.match(r'resnet_graph\.train: error: (.*) record (\d+) is not a readable PNG, JPEG, GIF, BMP or WebP '
                     r'image \((.*)\); remove it or run without --strict_data to skip it \(stopped at step (\d+), '
                     r'saved (.*); run the same command to resume\)$', lines[0])
    assert match, lines[0]
    path, record, reason, step, saved = match.groups()
    assert path == os.path.join(str(tmp_path / 'data'), TRAIN_FILE) and reason == REASON[int(record)]
    step = int(step)  # the first batch of epoch 3 that holds a bad record: the steps before it are kept
    assert 8 <= step < 12 and saved == os.path.join(run, 'model.ckpt-%d' % step)
    import tensorflow as tf
    assert tf.train.latest_checkpoint(run) == saved and int(tf.train.load_variable(saved, 'global_step')) == step
    assert json.load(open(os.path.join(run, 'config.json')))['strict_data'] is True


def rss_mb():
    """This process's resident memory now, MB (Linux /proc)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


def stream_rss(data_dir, epochs, batch_size=64, image_size=8, seed=0):
    """Streams ``epochs`` epochs of a tfrecord set's training batches through the training pipeline
    (``DataLoader.train_dataset``, the trainer's, without the model) and records resident memory.

    Returns dict: first_batch_mb (after the first batch: the shuffle buffer is full by then), epochs_mb (a list,
    after each epoch), steps_per_epoch, encoded_mb (the train-* files' size).
    """
    import tensorflow as tf
    from data_loader import DataLoader
    loader = DataLoader('tfrecord', data_dir, image_size, mean=[0.5] * 3, std=[0.25] * 3)
    steps = len(loader.train_ids) // batch_size
    encoded = sum(os.path.getsize(path) for path in loader.source.files[:loader.source.num_train_files])
    with tf.Graph().as_default():
        batch = tf.compat.v1.data.make_one_shot_iterator(
            loader.train_dataset(batch_size, seed, 0, epochs * steps)).get_next()
        with tf.compat.v1.Session() as sess:
            sess.run(batch)
            first, per_epoch = rss_mb(), []
            for step in range(1, epochs * steps):
                sess.run(batch)
                if (step + 1) % steps == 0:
                    per_epoch.append(rss_mb())
    return dict(first_batch_mb=first, epochs_mb=per_epoch, steps_per_epoch=steps, encoded_mb=encoded / 2 ** 20)


def make_large_set(root, records=4000, side=64, distinct=50):
    """A train-00000-of-00001 of ``records`` 64x64 noise PNGs (about 12 KB each: ~48 MB; ``distinct`` images
    cycled, every record its own bytes on disk) and a small validation file."""
    import tensorflow as tf
    rng = np.random.RandomState(0)
    pngs = [tf.io.encode_png(rng.randint(0, 256, (side, side, 3)).astype(np.uint8)).numpy() for _ in range(distinct)]
    write_records(os.path.join(str(root), TRAIN_FILE), [(pngs[k % distinct], k % 10) for k in range(records)])
    write_records(os.path.join(str(root), 'validation-00000-of-00001'), [(pngs[k], k) for k in range(10)])


def test_streamed_epochs_keep_resident_memory_flat(tmp_path):
    make_large_set(tmp_path)
    result = run_cli_script(__file__, tmp_path, 5)
    growth = max(result['epochs_mb']) - result['first_batch_mb']
    print('stream RSS MB: first batch %.1f, epochs %s; encoded %.1f MB'
          % (result['first_batch_mb'], ', '.join('%.1f' % m for m in result['epochs_mb']), result['encoded_mb']))
    assert result['encoded_mb'] > 40 and len(result['epochs_mb']) == 5
    assert growth < result['encoded_mb'] / 4  # a pipeline that held the records (a .cache()) grows by all of them
    assert max(result['epochs_mb']) - result['epochs_mb'][0] < result['encoded_mb'] / 8  # no creep epoch by epoch


def run_cli_script(path, *args):
    """Runs this file as a script in a subprocess of its own (its memory apart from pytest's) -> its JSON."""
    import subprocess
    import sys
    from conftest import ROOT
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    done = subprocess.run([sys.executable, path] + [str(a) for a in args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


if __name__ == '__main__':  # python tests/test_tfrecord_stream.py DATA_DIR EPOCHS [BATCH_SIZE [IMAGE_SIZE]]
    import sys
    print(json.dumps(stream_rss(sys.argv[1], *[int(a) for a in sys.argv[2:]])))
