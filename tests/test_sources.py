"""Real data sources: each format written here in its real layout and read back exactly; bad files named."""
import gzip
import json
import os
import pickle
import struct

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY, error_lines, run_cli
from data_loader import DataLoader
from resnet_graph.errors import UsageError
from resnet_graph.data import load_source


def write_idx(path, array, gz):
    """Writes a uint8 array in IDX format (magic 0x08 0x<ndim>, big-endian dims), gzipped if gz."""
    data = struct.pack('>I', 0x800 | array.ndim) + struct.pack('>%dI' % array.ndim, *array.shape) + array.tobytes()
    with (gzip.open if gz else open)(str(path), 'wb') as f:
        f.write(data)


def make_mnist(root, n_train=40, n_test=10, gz=True, seed=0):
    """A small MNIST-layout directory; returns (train images, train labels, test images, test labels)."""
    rng = np.random.RandomState(seed)
    arrays = (rng.randint(0, 256, (n_train, 28, 28)).astype(np.uint8), (np.arange(n_train) % 10).astype(np.uint8),
              rng.randint(0, 256, (n_test, 28, 28)).astype(np.uint8), (np.arange(n_test) % 10).astype(np.uint8))
    suffix = '.gz' if gz else ''
    for stem, array in zip(('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte',
                            't10k-labels-idx1-ubyte'), arrays):
        write_idx(os.path.join(str(root), stem + suffix), array, gz)
    return arrays


@pytest.mark.parametrize('gz', [True, False])
def test_mnist_idx_read_back_exactly_with_stratified_stable_split(tmp_path, gz):
    train_x, train_y, test_x, test_y = make_mnist(tmp_path, gz=gz)
    source = load_source('mnist', str(tmp_path), validation_fraction=0.2, split_seed=3)
    splits = source.splits
    assert [len(splits[k]) for k in ('train', 'validation', 'test')] == [30, 10, 10]
    assert np.bincount(source.labels[splits['validation']], minlength=10).tolist() == [1] * 10  # stratified
    assert set(splits['validation']).isdisjoint(splits['train']) and splits['test'].tolist() == list(range(40, 50))
    images, labels = source.fetch(splits['test'])
    np.testing.assert_array_equal(images[..., 0], test_x.astype(np.float32) / 255)
    np.testing.assert_array_equal(labels, test_y)
    images, labels = source.fetch([0, 39])
    np.testing.assert_array_equal(images[..., 0], train_x[[0, 39]].astype(np.float32) / 255)
    again = load_source('mnist', str(tmp_path), validation_fraction=0.2, split_seed=3).splits
    assert all(np.array_equal(splits[k], again[k]) for k in splits)
    other = load_source('mnist', str(tmp_path), validation_fraction=0.2, split_seed=4).splits
    assert not np.array_equal(splits['validation'], other['validation'])


def cifar_arrays(n, classes, seed):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8), (np.arange(n) % classes).astype(np.int64)


def to_rows(images):
    """uint8 [n, 32, 32, 3] -> the CIFAR row layout [n, 3072]: the R, G, B planes one after the other."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def make_cifar_python(root, hundred=False, n_batches=2, per_batch=20, n_test=10):
    """CIFAR python-version batches (protocol-2 pickles with bytes keys, as distributed); returns the arrays."""
    classes = 100 if hundred else 10
    folder = os.path.join(str(root), 'cifar-100-python' if hundred else 'cifar-10-batches-py')
    os.makedirs(folder, exist_ok=True)
    key = b'fine_labels' if hundred else b'labels'

    def dump(name, obj):
        with open(os.path.join(folder, name), 'wb') as f:
            pickle.dump(obj, f, protocol=2)

    train = [cifar_arrays(per_batch, classes, i) for i in range(1 if hundred else n_batches)]
    test = cifar_arrays(n_test, classes, 99)
    names = ['class%d' % c for c in range(classes)]
    for i, (x, y) in enumerate(train):
        dump('train' if hundred else 'data_batch_%d' % (i + 1),
             {b'batch_label': b'training batch', b'data': to_rows(x), key: y.tolist(), b'filenames': []})
    dump('test' if hundred else 'test_batch', {b'data': to_rows(test[0]), key: test[1].tolist()})
    dump('meta' if hundred else 'batches.meta',
         {(b'fine_label_names' if hundred else b'label_names'): [n.encode() for n in names]})
    return np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), test[0], test[1], names


def make_cifar_binary(root, hundred=False, n_train=20, n_test=10):
    """CIFAR binary version: records of label byte(s) + 3072 pixel bytes."""
    classes = 100 if hundred else 10
    folder = os.path.join(str(root), 'cifar-100-binary' if hundred else 'cifar-10-batches-bin')
    os.makedirs(folder, exist_ok=True)
    (train_x, train_y), (test_x, test_y) = cifar_arrays(n_train, classes, 1), cifar_arrays(n_test, classes, 2)
    for name, x, y in (('train.bin' if hundred else 'data_batch_1.bin', train_x, train_y),
                       ('test.bin' if hundred else 'test_batch.bin', test_x, test_y)):
        labels = np.stack([y // 20, y], 1) if hundred else y[:, None]
        np.concatenate([labels.astype(np.uint8), to_rows(x)], 1).tofile(os.path.join(folder, name))
    return train_x, train_y, test_x, test_y


@pytest.mark.parametrize('hundred', [False, True])
def test_cifar_python_batches_read_back_exactly(tmp_path, hundred):
    train_x, train_y, test_x, test_y, names = make_cifar_python(tmp_path, hundred)
    source = load_source('cifar100' if hundred else 'cifar10', str(tmp_path), validation_fraction=0.5)
    n = len(train_y)
    assert source.class_names == names and source.channels == 3
    np.testing.assert_array_equal(source.fetch(np.arange(n))[0], train_x.astype(np.float32) / 255)
    np.testing.assert_array_equal(source.fetch(np.arange(n))[1], train_y)
    np.testing.assert_array_equal(source.fetch(source.splits['test'])[0], test_x.astype(np.float32) / 255)
    np.testing.assert_array_equal(source.labels[source.splits['test']], test_y)
    assert len(source.splits['validation']) + len(source.splits['train']) == n


@pytest.mark.parametrize('hundred', [False, True])
def test_cifar_binary_version_read_back_exactly(tmp_path, hundred):
    train_x, train_y, test_x, test_y = make_cifar_binary(tmp_path, hundred)
    source = load_source('cifar100' if hundred else 'cifar10', str(tmp_path))
    np.testing.assert_array_equal(source.fetch(np.arange(20))[0], train_x.astype(np.float32) / 255)
    np.testing.assert_array_equal(source.labels, np.concatenate([train_y, test_y]))
    np.testing.assert_array_equal(source.fetch(source.splits['test'])[0], test_x.astype(np.float32) / 255)


def test_channels_convert_gray_rgb_and_alpha(tmp_path):
    train_x = make_cifar_binary(tmp_path)[0]
    rgb = train_x[:2].astype(np.float32) / 255
    gray = load_source('cifar10', str(tmp_path), channels=1).fetch([0, 1])[0]
    np.testing.assert_allclose(gray[..., 0], rgb @ np.array([0.2989, 0.5870, 0.1140], np.float32), atol=1e-6)
    rgba = load_source('cifar10', str(tmp_path), channels=4).fetch([0, 1])[0]
    np.testing.assert_array_equal(rgba[..., :3], rgb)
    assert (rgba[..., 3] == 1).all()
    digits = load_source('digits', channels=3)
    three = digits.fetch([0])[0]
    assert three.shape == (1, 8, 8, 3) and (three[..., 0] == three[..., 2]).all()


class Payload(object):
    """Unpickling this runs code that creates ``marker``: what a malicious 'CIFAR batch' would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, ("open(%r, 'w').close()" % self.marker,))


def test_the_payload_is_real(tmp_path):
    pickle.loads(pickle.dumps(Payload(str(tmp_path / 'ran')), protocol=2))  # an ordinary unpickler runs it
    assert (tmp_path / 'ran').exists()


def test_malicious_pickle_is_refused_and_never_run(tmp_path):
    make_cifar_python(tmp_path)
    marker = tmp_path / 'pwned'
    with open(str(tmp_path / 'cifar-10-batches-py' / 'data_batch_2'), 'wb') as f:
        pickle.dump({b'data': Payload(str(marker)), b'labels': [0]}, f, protocol=2)
    with pytest.raises(UsageError, match=r'data_batch_2 .*builtin.*exec, .*refused, not run'):
        load_source('cifar10', str(tmp_path))
    assert not marker.exists()


def test_cifar_binary_of_the_wrong_size_is_named(tmp_path):
    make_cifar_binary(tmp_path)
    path = tmp_path / 'cifar-10-batches-bin' / 'test_batch.bin'
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(UsageError, match='test_batch.bin has 30725 bytes, not a multiple of the 3073-byte'):
        load_source('cifar10', str(tmp_path))


def write_image(path, pixels):
    """Writes uint8 [h, w, 3] pixels as PNG or JPEG (TensorFlow's encoders), BMP (24-bit, by hand) or lossless WebP
    (Pillow)."""
    import tensorflow as tf
    if path.endswith('.webp'):
        import io
        from PIL import Image
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, 'WEBP', lossless=True)
        data = buffer.getvalue()
    elif path.endswith('.bmp'):
        h, w, _ = pixels.shape
        stride = (3 * w + 3) // 4 * 4
        rows = b''.join(pixels[y, :, ::-1].tobytes().ljust(stride, b'\0') for y in range(h - 1, -1, -1))
        header = struct.pack('<2sIHHIIiiHHIIiiII', b'BM', 54 + len(rows), 0, 0, 54, 40, w, h, 1, 24, 0, len(rows),
                             2835, 2835, 0, 0)
        data = header + rows
    elif path.endswith('.png'):
        data = tf.io.encode_png(pixels).numpy()
    else:
        data = tf.io.encode_jpeg(pixels, quality=100).numpy()
    with open(path, 'wb') as f:
        f.write(data)


def make_folder(root, classes=('cat', 'dog'), per_class=5, ext='.png', seed=0):
    """root/<class>/<i><ext> of 8x8 RGB images; returns {path: (pixels, class id)}."""
    rng = np.random.RandomState(seed)
    written = {}
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(str(root), name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)
            path = os.path.join(str(root), name, '%d%s' % (i, '.bmp' if i == 0 else ext))
            write_image(path, pixels)
            written[path] = (pixels, c)
    return written


def assert_reads_back(source, written):
    ids = np.arange(len(source.paths))
    images, labels = source.fetch(ids)
    for k, path in enumerate(source.paths):
        pixels, label = written[path]
        np.testing.assert_allclose(images[k], pixels / 255.0, atol=1e-7, err_msg=path)  # convert_image_dtype's 1/255
        np.testing.assert_array_equal(np.round(images[k] * 255).astype(np.uint8), pixels, err_msg=path)
        assert labels[k] == label


def test_folder_of_png_and_bmp_reads_back_exactly_with_carved_splits(tmp_path):
    written = make_folder(tmp_path)
    source = load_source('folder', str(tmp_path), image_size=8, validation_fraction=0.2)
    assert source.class_names == ['cat', 'dog'] and source.channels == 3 and source.images is None
    assert [len(source.splits[k]) for k in ('train', 'validation', 'test')] == [6, 2, 2]
    assert sorted(source.labels[source.splits['test']].tolist()) == [0, 1]
    assert_reads_back(source, written)


def test_folder_of_webp_reads_back_exactly(tmp_path):
    written = make_folder(tmp_path, ext='.webp')
    source = load_source('folder', str(tmp_path), image_size=8)
    assert sum(path.endswith('.webp') for path in source.paths) == 8
    assert_reads_back(source, written)


def test_folder_train_val_test_trees_and_jpeg(tmp_path):
    written = {}
    for i, split in enumerate(('train', 'val', 'test')):
        written.update(make_folder(tmp_path / split, per_class=3, ext='.jpg', seed=i))
    source = load_source('folder', str(tmp_path), image_size=8)
    assert [len(source.splits[k]) for k in ('train', 'validation', 'test')] == [6, 6, 6]
    assert [source.paths[i].split(os.sep)[-3] for i in source.splits['validation']] == ['val'] * 6
    import tensorflow as tf
    images, labels = source.fetch(np.arange(18))
    for k, path in enumerate(source.paths):
        pixels, label = written[path]
        if path.endswith('.jpg'):  # lossy: what the file holds is what TensorFlow's JPEG decoder gives
            pixels = tf.io.decode_jpeg(tf.io.read_file(path)).numpy()
        np.testing.assert_array_equal(np.round(images[k] * 255).astype(np.uint8), pixels, err_msg=path)
        assert labels[k] == label


def test_empty_class_folder_is_named(tmp_path):
    make_folder(tmp_path)
    os.makedirs(str(tmp_path / 'emu'))
    with pytest.raises(UsageError, match='class folder .*emu holds no PNG, JPEG, GIF, BMP or WebP image'):
        load_source('folder', str(tmp_path))


def test_corrupt_image_is_skipped_and_counted_or_an_error_when_strict(tmp_path, capsys):
    written = make_folder(tmp_path)
    broken = os.path.join(str(tmp_path), 'dog', '3.png')
    with open(broken, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    source = load_source('folder', str(tmp_path), image_size=8)
    k = source.paths.index(broken)
    first = 0 if k else 1
    images, labels = source.fetch([first, k])
    np.testing.assert_array_equal(images[1], images[0])  # replaced by the batch's first good image, with its label
    assert labels.tolist() == [written[source.paths[first]][1]] * 2 and source.skipped == {k}
    assert 'skipped corrupt image %s (1 skipped so far' % broken in capsys.readouterr().err
    with pytest.raises(UsageError, match='%s is not a readable PNG, JPEG, GIF, BMP or WebP image' % broken):
        load_source('folder', str(tmp_path), image_size=8, strict=True)


def test_two_corrupt_images_in_one_batch_are_counted_one_by_one(tmp_path, capsys):
    make_folder(tmp_path)
    broken = [os.path.join(str(tmp_path), 'dog', name) for name in ('3.png', '4.png')]
    for path in broken:
        with open(path, 'wb') as f:
            f.write(b'\x89PNG\r\n\x1a\n' + b'\0' * 20)
    source = load_source('folder', str(tmp_path), image_size=8)
    bad = [source.paths.index(path) for path in broken]
    good = next(i for i in range(len(source.paths)) if i not in bad)
    source.fetch([good] + bad + bad)  # each bad one twice: still counted once
    lines = [line for line in capsys.readouterr().err.splitlines() if 'skipped corrupt image' in line]
    assert [line.split('(')[1].split(' skipped')[0] for line in lines] == ['1', '2'] and len(source.skipped) == 2


def test_csv_manifests_with_names_and_integers(tmp_path):
    written = make_folder(tmp_path / 'images', per_class=4)
    paths = sorted(written)
    (tmp_path / 'train.csv').write_text('path,label\n' + ''.join(
        '%s,%s\n' % (os.path.relpath(p, str(tmp_path)), ['cat', 'dog'][written[p][1]]) for p in paths[1:7]))
    (tmp_path / 'test.csv').write_text('images/cat/0.bmp,cat\nimages/dog/3.png,dog\n')
    source = load_source('csv', str(tmp_path), image_size=8, validation_fraction=0.34)
    assert source.class_names == ['cat', 'dog']
    assert [len(source.splits[k]) for k in ('train', 'validation', 'test')] == [4, 2, 2]
    assert_reads_back(source, written)
    manifest = tmp_path / 'images' / 'list.csv'
    manifest.write_text(''.join('%s,%d\n' % (os.path.relpath(p, str(tmp_path / 'images')), written[p][1] + 3)
                                for p in paths))
    numbered = load_source('csv', str(manifest), image_size=8)
    assert numbered.class_names == ['0', '1', '2', '3', '4'] and sorted(set(numbered.labels.tolist())) == [3, 4]


def test_manifest_row_pointing_nowhere_or_unknown_label_is_named(tmp_path):
    make_folder(tmp_path, per_class=2)
    (tmp_path / 'train.csv').write_text('cat/1.png,cat\ndog/1.png,dog\ncat/9.png,cat\n')
    with pytest.raises(UsageError, match=r'train.csv row 3: .*cat/9.png does not exist'):
        load_source('csv', str(tmp_path))
    (tmp_path / 'train.csv').write_text('cat/1.png,cat\ndog/1.png,dog\n')
    (tmp_path / 'val.csv').write_text('cat/0.bmp,cat\ndog/0.bmp,wolf\n')
    with pytest.raises(UsageError, match=r"val.csv row 2: label 'wolf' is outside the classes \(cat, dog\)"):
        load_source('csv', str(tmp_path))


def train_batches(loader, seed, steps=2, batch=8):
    import tensorflow as tf
    with tf.Graph().as_default():
        images, labels = tf.compat.v1.data.make_one_shot_iterator(
            loader.train_dataset(batch, seed, 0, steps)).get_next()
        with tf.compat.v1.Session() as sess:
            return [sess.run([images, labels]) for _ in range(steps)]


def test_augmentation_is_deterministic_under_the_seed_and_off_at_evaluation(tmp_path):
    make_cifar_binary(tmp_path, n_train=40)
    plain = DataLoader('cifar10', str(tmp_path), 16)
    augmented = DataLoader('cifar10', str(tmp_path), 16, augment='cifar')
    first, again = train_batches(augmented, seed=5), train_batches(augmented, seed=5)
    for (a, la), (b, lb) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    reference = train_batches(plain, seed=5)  # the same ids in the same order, not augmented
    np.testing.assert_array_equal(first[0][1], reference[0][1])
    assert not np.allclose(first[0][0], reference[0][0])
    order = __import__('resnet_graph.data.pipeline', fromlist=['EpochOrder']).EpochOrder(plain.train_ids, 8, 5)
    np.testing.assert_allclose(reference[1][0], plain.get_batch_data(order.batch_ids(1))[0], atol=1e-6)
    # Evaluation goes through get_batch_data, which never augments.
    np.testing.assert_array_equal(augmented.get_batch_data([0, 1])[0], plain.get_batch_data([0, 1])[0])
    other = train_batches(augmented, seed=6)
    assert not np.allclose(other[0][0], first[0][0])
    imagenet = train_batches(DataLoader('cifar10', str(tmp_path), 16, augment='imagenet'), seed=5, steps=1)
    assert imagenet[0][0].shape == (8, 16, 16, 3) and not np.allclose(imagenet[0][0], reference[0][0])


@pytest.fixture(scope='module')
def cifar_run(tmp_path_factory):
    """A tiny CIFAR-10 (python version) directory and a depth-8 ResNet trained on it for 2 steps, then resumed to 4
    without repeating the data flags (the saved split must be used)."""
    root = tmp_path_factory.mktemp('cifar_run')
    make_cifar_python(root / 'data', n_batches=2, per_batch=30, n_test=10)
    args = ['--dataset', 'cifar10', '--data_dir', root / 'data', '--model_dir', root / 'run', '--depth', '8',
            '--image_size', '8', '--batch_size', '8', '--log_every', '2', '--augment', 'cifar',
            '--validation_fraction', '0.5']
    first = run_cli('train', *args, '--max_steps', '2')
    second = run_cli('train', '--model_dir', root / 'run', '--max_steps', '4')
    return root, first, second


@pytest.mark.slow  # whole training runs
def test_train_cli_on_cifar_files_resumes_with_the_same_split(cifar_run):
    root, first, second = cifar_run
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    assert 'training ResNet-8 on cifar10: 2 steps (3 per epoch, batch 8)' in first.stdout
    assert 'resuming from' in second.stdout and 'at step 2' in second.stdout
    for out in (first.stdout, second.stdout):  # half of each class's 6 training images; the default would hold 1
        assert 'validation loss' in out and '(30 images)' in out
    assert 'test accuracy of the best checkpoint' in second.stdout and '10 images)' in second.stdout
    saved = json.load(open(str(root / 'run' / 'config.json')))
    assert (saved['validation_fraction'], saved['split_seed'], saved['channels'], saved['augment']) == \
        (0.5, 20240601, 3, 'cifar')
    assert saved['num_classes'] == 10 and len(saved['mean']) == 3
    from resnet_graph.training.run_dir import incompatible  # asking a resume for another split is refused (exit 2)
    from config import RunConfig
    assert incompatible(RunConfig.from_json(saved), dict(validation_fraction=0.1)) == [
        'validation_fraction: saved 0.5, asked 0.1']
    from resnet_graph.serving.inference import RestoredRun  # what evaluate and predict rebuild from config.json
    restored = RestoredRun(str(root / 'run'))
    assert restored.evaluate('validation')['images'] == 30 and restored.loader.augment == 'none'
    restored.close()


def test_bad_data_exits_2_naming_the_file(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / 't10k-images-idx3-ubyte.gz'
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    result = run_cli('train', '--dataset', 'mnist', '--data_dir', tmp_path, '--model_dir', tmp_path / 'run', *TINY)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    lines = error_lines(result.stderr)
    assert lines == ['resnet_graph.train: error: %s is truncated or padded: 7756 bytes, its header [10, 28, 28] asks '
                     'for 7856; download it again' % path]
    assert not os.path.exists(str(tmp_path / 'run' / 'best.json'))


def make_tfrecords(root, per_file=8, seed=0):
    """train-0000{0,1}-of-00002 and validation-00000-of-00001 of Examples in the official-models ImageNet layout
    (PNG bytes, labels 1..3 as ImageNet's start at 1); returns [(pixels, label)] in file order."""
    import tensorflow as tf
    rng = np.random.RandomState(seed)
    written = []
    for name in ('train-00000-of-00002', 'train-00001-of-00002', 'validation-00000-of-00001'):
        with tf.io.TFRecordWriter(os.path.join(str(root), name)) as writer:
            for i in range(per_file):
                pixels, label = rng.randint(0, 256, (8, 8, 3)).astype(np.uint8), 1 + i % 3
                feature = {
                    'image/encoded': tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[tf.io.encode_png(pixels).numpy()])),
                    'image/format': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'PNG'])),
                    'image/class/label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                    'image/class/text': tf.train.Feature(bytes_list=tf.train.BytesList(value=[b'n0%d' % label]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
                written.append((pixels, label))
    return written


def test_tfrecords_by_id_read_back_exactly_and_stream_the_training_split(tmp_path):
    written = make_tfrecords(tmp_path)
    loader = DataLoader('tfrecord', str(tmp_path), 8, validation_fraction=0.2)
    source = loader.source
    assert source.class_names == ['0', 'n01', 'n02', 'n03'] and len(source.labels) == 24
    assert source.splits['test'].tolist() == list(range(16, 24)) and len(source.splits['validation']) == 3
    images, labels = source.fetch(np.arange(24)[::-1])
    for k, i in enumerate(range(23, -1, -1)):
        np.testing.assert_array_equal(np.round(images[k] * 255).astype(np.uint8), written[i][0])
        assert labels[k] == written[i][1]
    steps = len(source.splits['train']) // 4  # 13 training records, batch 4: 3 steps per epoch
    batches = train_batches(loader, seed=1, steps=2 * steps, batch=4)
    order = __import__('resnet_graph.data.pipeline', fromlist=['EpochOrder']).EpochOrder(loader.train_ids, 4, 1)
    seen = []
    for images, labels in batches[:steps]:  # each streamed image is a training record, preprocessed as by id
        for image, label in zip(images, labels):
            match = [i for i in loader.train_ids if np.allclose(loader.get_batch_data([i])[0][0], image, atol=1e-5)]
            assert len(match) == 1 and source.labels[match[0]] == label
            seen.append(match[0])
    assert len(set(seen)) == 12 and order.steps_per_epoch == steps
    import tensorflow as tf
    with tf.Graph().as_default():  # started at step 4 (a resume), the stream gives the same batches
        resumed = tf.compat.v1.data.make_one_shot_iterator(loader.train_dataset(4, 1, 4, 2 * steps)).get_next()
        with tf.compat.v1.Session() as sess:
            for step in range(4, 2 * steps):
                np.testing.assert_array_equal(sess.run(resumed)[0], batches[step][0])


def test_truncated_tfrecord_is_named(tmp_path):
    make_tfrecords(tmp_path)
    path = tmp_path / 'train-00001-of-00002'
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UsageError, match='train-00001-of-00002 is truncated: record 7 at byte'):
        load_source('tfrecord', str(tmp_path))


def test_affine_transforms_mirror_rotate_and_shift_exactly():
    from resnet_graph.data import augment
    images = tf.constant(np.random.RandomState(0).rand(2, 6, 6, 3), tf.float32)

    def transform(angle=0.0, zoom=1.0, shift_x=0.0, shift_y=0.0, flip=False):
        t = augment.affine_transforms(tf.fill([2], angle), tf.fill([2], zoom), tf.fill([2], shift_x),
                                      tf.fill([2], shift_y), tf.fill([2], flip), 6)
        return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=t, output_shape=[6, 6], fill_value=0.0,
                                                     interpolation='BILINEAR', fill_mode='NEAREST').numpy()

    np.testing.assert_allclose(transform(), images.numpy(), atol=1e-6)
    np.testing.assert_allclose(transform(flip=True), images.numpy()[:, :, ::-1], atol=1e-6)
    # a positive angle turns the content counter-clockwise as displayed (rows down, columns right)
    np.testing.assert_allclose(transform(angle=np.pi / 2), np.rot90(images.numpy(), k=1, axes=(1, 2)), atol=1e-5)
    shifted = transform(shift_x=2.0)  # content moves 2 pixels right, the left edge column repeated
    np.testing.assert_allclose(shifted[:, :, 2:], images.numpy()[:, :, :-2], atol=1e-6)
    np.testing.assert_allclose(shifted[:, :, 0], images.numpy()[:, :, 0], atol=1e-6)


def test_affine_policy_is_deterministic_under_the_seed():
    from resnet_graph.data import augment
    images = tf.constant(np.random.RandomState(1).rand(4, 8, 8, 1), tf.float32)
    first = augment.apply(images, 'affine', tf.constant([5, 3])).numpy()
    np.testing.assert_array_equal(first, augment.apply(images, 'affine', tf.constant([5, 3])).numpy())
    assert not np.allclose(first, augment.apply(images, 'affine', tf.constant([5, 4])).numpy())
    assert not np.allclose(first, images.numpy()) and first.shape == (4, 8, 8, 1)
