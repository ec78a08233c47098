"""What the trainer writes for TensorBoard besides the graph.

train/ and eval/ use the same scalar tags (loss, cross_entropy, accuracy,
top5_accuracy) so their curves overlay; train/ adds learning_rate,
gradient_norm, examples_per_sec, a few input images as the network sees
them, optional weight and batch-norm histograms, the run's configuration as
text at step 0 and, with --trace_step, a Chrome trace of one step. eval/ adds
a confusion-matrix image at each evaluation.
"""
import json
import logging
import os
import threading

import numpy as np
import tensorflow as tf

from resnet_graph.errors import UsageError

v1 = tf.compat.v1

CONFUSION_SIDE = 256  # pixels: each class gets max(1, 256 // num_classes) of them


def train_summary(model, learning_rate, gradient_norm, mean, std, max_images=3):
    """The merged op of the periodic train summaries (scalars and input images)."""
    # Undo the normalisation so the images look like the data, not like z-scores.
    images = tf.clip_by_value(model.input_x[:max_images] * tf.constant(std) + tf.constant(mean), 0.0, 1.0)
    scalars = dict(loss=model.loss, cross_entropy=model.cross_entropy, accuracy=model.accuracy,
                   top5_accuracy=model.top5_accuracy, learning_rate=learning_rate, gradient_norm=gradient_norm)
    return v1.summary.merge([_scalar(tag, value) for tag, value in scalars.items()] +
                            [v1.summary.image('inputs', images, max_outputs=max_images)])


def _scalar(tag, value):
    # The raw op takes its tag verbatim; v1.summary.scalar would derive it from a
    # uniquified op name ('loss_1'), and train/ and eval/ curves would not overlay.
    return tf.raw_ops.ScalarSummary(tags=tag, values=value)


def histogram_summary(model):
    """Histograms of the conv/dense kernels and the batch-norm moving statistics: a merged op."""
    watched = [v for v in model.variables
               if v.op.name.endswith(('/kernel', '/moving_mean', '/moving_variance'))]
    return v1.summary.merge([tf.raw_ops.HistogramSummary(tag=model.local_name(v), values=v) for v in watched])


def config_summary(cfg):
    """A text summary op holding the run's configuration (a config.RunConfig) as config.json's indented JSON."""
    text = '```\n%s\n```' % json.dumps(cfg.to_json(), indent=2, sort_keys=True)
    return v1.summary.text('config', tf.constant(text))


def scalars(writer, step, **values):
    """Writes Python floats as scalar summaries at ``step``."""
    writer.add_summary(v1.Summary(value=[v1.Summary.Value(tag=k, simple_value=v) for k, v in values.items()]), step)


def confusion_matrix(labels, predictions, num_classes):
    """int [N] true classes, int [N] predicted -> int64 [num_classes, num_classes], rows = true class."""
    index = np.asarray(labels, np.int64) * num_classes + np.asarray(predictions, np.int64)
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def confusion_image(matrix):
    """[K, K] counts -> uint8 [1, K * cell, K * cell, 3]: each row scaled to its own total, white = all."""
    rows = matrix.sum(axis=1, keepdims=True)
    shade = (255 * matrix / np.maximum(rows, 1)).astype(np.uint8)
    cell = max(1, CONFUSION_SIDE // len(matrix))
    image = np.kron(shade, np.ones((cell, cell), np.uint8))
    return np.repeat(image[None, :, :, None], 3, axis=3)


class ConfusionSummary(object):
    """An image summary op fed with a rendered confusion matrix (built before the graph is finalised)."""

    def __init__(self):
        self.image = v1.placeholder(tf.uint8, [1, None, None, 3], name='confusion_image')
        self.op = v1.summary.image('confusion_matrix', self.image)

    def write(self, sess, writer, step, matrix):
        writer.add_summary(sess.run(self.op, {self.image: confusion_image(matrix)}), step)


def write_trace(run_metadata, path):
    """Writes a step's RunMetadata step stats as a Chrome trace (chrome://tracing, Perfetto) to ``path``."""
    from tensorflow.python.client import timeline  # the TF1 profiler's only public home
    with open(path, 'w') as f:
        f.write(timeline.Timeline(run_metadata.step_stats).generate_chrome_trace_format())


class EventWriteError(UsageError):
    """An event file that cannot be written (a full disk, its directory removed): one line naming it and why."""


WRITER_THREAD = 'EventLoggerThread'  # the name of TensorFlow's event writing thread


def _quiet_writer_thread():
    """Stops TensorFlow's event writing thread from printing its traceback and log line when a write fails: the
    failure reaches EventWriter's next call, which says it in one line."""
    if getattr(threading.excepthook, 'quiet_event_writer', False):
        return
    previous = threading.excepthook

    def hook(args):
        if args.thread is None or args.thread.name != WRITER_THREAD:
            previous(args)
    hook.quiet_event_writer = True
    threading.excepthook = hook
    logging.getLogger('tensorflow').addFilter(
        lambda record: not record.getMessage().startswith('EventFileWriter writer thread error'))


class EventWriter(object):
    """v1.summary.FileWriter whose failures are an EventWriteError, once: a write that fails, or an event file
    that disappeared (its directory removed), where TensorFlow would print a thread's traceback or drop the
    events silently. After a failure the writer writes nothing more."""

    def __init__(self, logdir, graph=None):
        _quiet_writer_thread()
        self.logdir, self.failed = logdir, False
        self._writer = self._call(lambda: v1.summary.FileWriter(logdir, graph))
        name = getattr(getattr(self._writer.event_writer, '_ev_writer', None), 'FileName', lambda: '')()
        self.path = (name.decode() if isinstance(name, bytes) else name) or None  # None: nothing to watch

    def _call(self, write):
        """Runs ``write``; any failure becomes EventWriteError naming the file and the cause."""
        if self.failed:
            return None
        try:
            result = write()
        except Exception as e:  # OpError, OSError, or IndexError ('File too large'): whatever the writer raised
            self.failed = True
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            cause = getattr(e, 'strerror', None) or (lines[0].split('; ')[-1] if lines else type(e).__name__)
            raise EventWriteError('cannot write the event file %s: %s; free space or fix the directory'
                                  % (getattr(self, 'path', None) or self.logdir, cause))
        if getattr(self, 'path', None) and not os.path.exists(self.path):
            self.failed = True
            raise EventWriteError('cannot write the event file %s: it was removed (its directory too?); keep the run '
                                  'directory whole while training' % self.path)
        return result

    def add_summary(self, summary, step):
        self._call(lambda: self._writer.add_summary(summary, step))

    def add_run_metadata(self, metadata, tag, step):
        self._call(lambda: self._writer.add_run_metadata(metadata, tag, step))

    def flush(self):
        self._call(self._writer.flush)

    def close(self):
        """Flushes and closes the file; after a failure, closes without writing."""
        if self.failed:
            return
        self._call(self._writer.close)

    def get_logdir(self):
        return self.logdir
