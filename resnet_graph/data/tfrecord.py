"""``tfrecord``: TFRecord files in the layout of the TensorFlow official-models ImageNet records.

    DIR/train-*        tf.train.Example records: image/encoded (JPEG/PNG bytes),
    DIR/validation-*   image/class/label (int64; ImageNet's are 1..1000, so 1001
                       classes), optional image/class/text (the class name)

The ``validation-*`` files are the test split; validation is a stratified
``validation_fraction`` of the ``train-*`` records. Nothing is loaded whole:

- by id (evaluation, ``DataLoader.get_batch_data``): an offset index built at
  load by one streaming pass over the files (8-byte length + 4-byte CRC
  headers; each record parsed once for its label) keeps (file, offset,
  length) per record, and a fetch seeks to the record and decodes it;
- training: ``train_dataset`` streams ``tf.data.TFRecordDataset`` over the
  ``train-*`` files, keeps the training split's records, shuffles each epoch
  from (seed, epoch), batches, and decodes in parallel in the pipeline. A
  resumed run skips the batches already trained (reading, not decoding, them).

A record whose image does not decode (corrupt, truncated) is replaced in its
batch by the batch's first good image, with that image's label, and counted on
stderr, as ``FileSource.read`` does by id; under ``--strict_data`` it is an
error naming the file and the record, raised when the record is read (by the
stream or by id), so a strict run never decodes the whole set at load.
"""
import glob
import os
import struct

import numpy as np

from resnet_graph.errors import UsageError
from resnet_graph.data import images as image_bounds
from resnet_graph.data.files import FileSource, check_dense_labels
from resnet_graph.data.source import train_validation_split

SHUFFLE_BUFFER = 1024  # records (serialized); ~110 MB of ImageNet JPEGs
HEADER = 12  # uint64 length + uint32 masked CRC of the length


def scan(path):
    """Streams one TFRecord file -> [(offset of the data, length)]; UsageError naming a truncated file."""
    records, size = [], os.path.getsize(path)
    with open(path, 'rb') as f:
        offset = 0
        while offset < size:
            header = f.read(HEADER)
            if len(header) < HEADER:
                raise UsageError('%s is truncated: a record header at byte %d is cut short' % (path, offset))
            length = struct.unpack('<Q', header[:8])[0]
            if offset + HEADER + length + 4 > size:
                raise UsageError('%s is truncated: record %d at byte %d needs %d bytes' % (path, len(records), offset,
                                                                                       length))
            records.append((offset + HEADER, length))
            f.seek(length + 4, 1)
            offset += HEADER + length + 4
    return records


def parse(data, where):
    """Serialized tf.train.Example -> (encoded image bytes, label, class text or None)."""
    import tensorflow as tf
    try:
        feature = tf.train.Example.FromString(data).features.feature
        encoded = feature['image/encoded'].bytes_list.value[0]
        label = feature['image/class/label'].int64_list.value[0]
    except Exception as e:  # a protobuf DecodeError, a missing key, an empty list
        raise UsageError('%s is not an Example with image/encoded and image/class/label (%s: %s)'
                         % (where, type(e).__name__, e))
    text = feature['image/class/text'].bytes_list.value if 'image/class/text' in feature else []
    return encoded, int(label), text[0].decode('utf-8', 'replace') if text else None


class TFRecordSource(FileSource):
    """A FileSource whose 'files' are records: paths[i] names 'FILE record N'; see the module docstring."""

    def __init__(self, files, num_train_files, index, labels, class_names, splits, channels, image_size, strict,
                 max_pixels):
        self.files, self.num_train_files = files, num_train_files
        self.index = index  # int64 [N, 3]: file number, offset of the data, length
        paths = ['%s record %d' % (files[f], r) for f, r in _record_numbers(index)]
        FileSource.__init__(self, 'tfrecord', paths, labels, class_names, splits, channels, image_size, False,
                            max_pixels)
        self.strict = strict  # checked as records are read, not by FileSource's decode-everything pass at load
        self.stream_error = None  # the line of the record that stopped the stream (strict), for the trainer

    def read(self, ids, strict=None):
        """FileSource.read, strict by default under --strict_data."""
        return FileSource.read(self, ids, self.strict if strict is None else strict)

    def _decode(self, i):
        number, offset, length = self.index[i]
        cap = image_bounds.max_file_bytes(self.max_pixels)
        if length > cap:
            raise ValueError('a record of %d bytes, over the %d an image within --max_image_pixels can take; raise '
                             '--max_image_pixels to read it' % (length, cap))
        with open(self.files[number], 'rb') as f:
            f.seek(offset)
            encoded = parse(f.read(length), self.paths[i])[0]
        return self.decode_bytes(encoded)

    def train_dataset(self, order, start_step, end_step, image_size, mean, std, augment='none'):
        """The training batches of steps [start_step, end_step), streamed from the train-* files."""
        import tensorflow as tf
        from resnet_graph.data import augment as augment_lib
        from resnet_graph.data.pipeline import preprocess
        train_files = self.files[:self.num_train_files]
        member = np.zeros(int(np.sum(self.index[:, 0] < self.num_train_files)), bool)
        member[order.ids] = True  # the training split's records (the rest of train-* is validation)
        member = tf.constant(member)
        batch, channels, max_pixels = order.batch_size, self.channels, self.max_pixels

        def epoch(e):
            records = tf.data.TFRecordDataset(train_files).enumerate()  # (source id, serialized Example)
            records = records.filter(lambda i, _: tf.gather(member, i))
            records = records.shuffle(SHUFFLE_BUFFER, seed=tf.cast(order.seed * 100003 + e, tf.int64))
            return records.repeat().batch(batch).take(order.steps_per_epoch)

        def load(step, records):
            ids, serialized = records
            features = tf.io.parse_example(serialized, {
                'image/encoded': tf.io.FixedLenFeature([], tf.string),
                'image/class/label': tf.io.FixedLenFeature([], tf.int64)})
            images, ok = decode_batch(features['image/encoded'], channels, image_size, max_pixels)
            labels = features['image/class/label']
            labels = tf.where(ok, labels, tf.gather(labels, tf.argmax(tf.cast(ok, tf.int32))))
            checked = tf.cond(tf.reduce_all(ok), lambda: tf.constant(0, tf.int64),
                              lambda: tf.numpy_function(self._corrupt_in_stream, [ids, ok], tf.int64))
            with tf.control_dependencies([checked]):
                images = tf.ensure_shape(images, [batch, image_size, image_size, channels])
            images = preprocess(images, image_size, mean, std)
            seed = tf.stack([tf.constant(order.seed, tf.int64), step])
            return augment_lib.apply(images, augment, seed), labels

        epochs = end_step // order.steps_per_epoch + 1
        stream = tf.data.Dataset.range(epochs).flat_map(epoch).skip(start_step).take(end_step - start_step)
        steps = tf.data.Dataset.range(start_step, end_step)
        return tf.data.Dataset.zip((steps, stream)).map(load, num_parallel_calls=2, deterministic=True).prefetch(2)

    def _corrupt_in_stream(self, ids, ok):
        """Called by the stream for a batch holding records that do not decode (ids int64 [B], ok bool [B]).

        Counts them on stderr as by id (``FileSource._skip``) and returns how
        many; under --strict_data, or when no record of the batch decodes,
        keeps the line in ``stream_error`` and raises UsageError with it.
        """
        bad = [int(i) for i in ids[~ok]]
        try:
            if self.strict:  # decoded again by id for the decoder's own reason
                FileSource.read(self, bad[:1], strict=True)
                raise UsageError('%s is not a readable %s image; remove it or run without --strict_data to skip it'
                                 % (self.paths[bad[0]], image_bounds.FORMATS))
            self._skip(bad)
            if not ok.any():
                raise UsageError('no readable image in a batch of %d (e.g. %s)' % (len(ids), self.paths[bad[0]]))
        except UsageError as e:
            self.stream_error = str(e)
            raise
        return np.int64(len(bad))


def decode_batch(encoded, channels, image_size, max_pixels=None):
    """Decodes a batch in the graph, replacing what does not decode.

    Args:
      encoded: string [B], PNG/JPEG/BMP/GIF bytes.
    Returns:
      images float32 [B, S, S, channels] in [0, 1], each resized to S =
      image_size, a record that does not decode (corrupt, truncated, over
      max_pixels by its header) replaced
      by the batch's first that does (zeros when none does); ok bool [B],
      which decoded.
    """
    import tensorflow as tf
    from resnet_graph.data.pipeline import decode
    positions = tf.range(tf.size(encoded))
    # tf.data drops the elements whose decode fails: one nested dataset per batch, as one per image is far slower.
    decoded = tf.data.Dataset.from_tensor_slices((positions, encoded)).map(
        lambda k, data: (k, tf.image.resize(decode(data, channels, max_pixels), [image_size, image_size]))
    ).ignore_errors()
    sentinel = tf.data.Dataset.from_tensors((tf.constant(-1), tf.zeros([image_size, image_size, channels])))
    everything = decoded.concatenate(sentinel).batch(tf.size(encoded, tf.int64) + 1)
    good, images = tf.data.Dataset.get_single_element(everything)
    ok = tf.reduce_any(tf.equal(positions[:, None], good[None, :]), axis=1)
    index = tf.where(ok, tf.cumsum(tf.cast(ok, tf.int32)) - 1, 0)  # a good one's place among the decoded
    return tf.gather(images, index), ok


def _record_numbers(index):
    """(file number, record number within the file) of each row of the index."""
    numbers, last, count = [], -1, 0
    for f in index[:, 0]:
        count = count + 1 if f == last else 0
        last = f
        numbers.append((int(f), count))
    return numbers


def load_tfrecord(data_dir, validation_fraction, split_seed, channels, image_size, strict, max_image_pixels,
                  **unused):
    train = sorted(glob.glob(os.path.join(data_dir, 'train-*')))
    test = sorted(glob.glob(os.path.join(data_dir, 'validation-*')))
    if not train:
        raise UsageError('no train-* TFRecord files in %s (the official-models ImageNet layout: train-00000-of-01024 '
                         '..., validation-00000-of-00128 ...)' % data_dir)
    files, rows, labels, texts = train + test, [], [], {}
    for number, path in enumerate(files):
        with open(path, 'rb') as f:
            for r, (offset, length) in enumerate(scan(path)):
                f.seek(offset)
                _, label, text = parse(f.read(length), '%s record %d' % (path, r))
                if label < 0:
                    raise UsageError('%s record %d: label %d is negative' % (path, r, label))
                rows.append((number, offset, length))
                labels.append(label)
                texts.setdefault(label, text)
    index, labels = np.asarray(rows, np.int64), np.asarray(labels, np.int64)
    num_train = int(np.sum(index[:, 0] < len(train)))
    numbers = _record_numbers(index)
    check_dense_labels(labels, lambda i: '%s record %d' % (files[numbers[i][0]], numbers[i][1]))
    names = [texts.get(c) or str(c) for c in range(int(labels.max()) + 1)]
    splits = train_validation_split(labels, num_train, validation_fraction, split_seed)
    return TFRecordSource(files, len(train), index, labels, names, splits, channels, image_size, strict,
                          max_image_pixels)
