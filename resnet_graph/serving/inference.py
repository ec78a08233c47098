"""Rebuilding a run's graph from its saved configuration, restoring a checkpoint, and batched evaluation."""
import itertools
import time

import numpy as np
import tensorflow as tf

import config
from data_loader import DataLoader
from resnet_graph.training import lifecycle
from resnet_graph.training import summaries
from resnet_graph.serving import imported
from resnet_graph.data.pipeline import Preprocessor
from resnet_graph.errors import UsageError, require_named
from resnet_graph.data.source import source_options
from resnet_graph.nets.model import ResNet, check_data_format
from resnet_graph.training.run_dir import RunDir

v1 = tf.compat.v1


def evaluate_ids(sess, model, loader, ids, batch_size=config.EVAL_BATCH_SIZE, label_offset=0):
    """Evaluates ``model`` on the examples ``ids`` in batches (never one huge feed).

    label_offset: added to the data set's labels (1: the network's class 0 is a background the data lacks).

    Returns dict: loss (mean cross-entropy), accuracy (top-1), top5, images
    (count), confusion (int64 [K, K] numpy, rows = true class).
    """
    totals = np.zeros(3)
    confusion = 0
    for images, labels in loader.batches(ids, batch_size):
        labels = labels + label_offset
        *values, predictions = sess.run([model.cross_entropy, model.accuracy, model.top5_accuracy,
                                         model.predictions], {model.input_x: images, model.input_y: labels})
        totals += np.asarray(values) * len(labels)
        confusion = confusion + summaries.confusion_matrix(labels, predictions, model.num_classes)
    count = len(ids)
    loss, accuracy, top5 = (totals / max(count, 1)).tolist()
    return dict(loss=loss, accuracy=accuracy, top5=top5, images=int(count), confusion=confusion)


def check_checkpoint(path, variables):
    """Raises UsageError listing the variables that ``path`` lacks or holds with another shape.

    Args:
      path: a checkpoint prefix.
      variables: the graph's variables that would be restored from it.
    """
    saved = dict(v1.train.list_variables(path))
    problems = []
    for variable in variables:
        name, shape = variable.op.name, variable.shape.as_list()
        if name not in saved:
            problems.append('%s missing' % name)
        elif list(saved[name]) != shape:
            problems.append('%s is %s, the network has %s' % (name, list(saved[name]), shape))
    if problems:
        raise UsageError('checkpoint %s does not fit this network (another architecture?): %d variables differ: '
                         '%s%s' % (path, len(problems), '; '.join(problems[:5]),
                                   ' ...' if len(problems) > 5 else ''))


def find_checkpoint(run, which):
    """RunDir, 'best' | 'latest' | a checkpoint path -> an existing checkpoint prefix whose tensors all read.

    While a trainer holds the run, 'best' and 'latest' are looked for again when none is found: best/ keeps one
    checkpoint, so while it is replaced the old one may be going and the new one not yet whole.
    Raises UsageError when there is none, or when the named checkpoint is damaged.
    """
    for tries in itertools.count(1):
        try:
            return _find_checkpoint(run, which)
        except UsageError:
            if lifecycle.holder(run.path) is None or not _rotating(run, which, tries):
                raise


def _find_checkpoint(run, which):
    from resnet_graph.training.run_dir import checkpoint_problem
    require_named('checkpoint', which, 'best, latest or a checkpoint path', 'checkpoint')
    path = run.resolve_checkpoint(which)
    if not path or not tf.io.gfile.exists(path + '.index'):
        latest = run.latest_checkpoint() if which == 'best' else None
        if which == 'latest' and run.best_checkpoint():  # an imported run: best/ only, no rolling ones
            advice = 'it has only its best: use --checkpoint best'
        elif latest:  # best/ damaged or removed: a rolling one remains
            advice = 'use --checkpoint latest (%s), or resume training to rebuild best/' % latest
        elif which in ('best', 'latest'):
            advice = ('it has no loadable checkpoint: train it with python -m resnet_graph.train --model_dir %s'
                      % run.path)
        else:
            advice = 'no file %s.index: use --checkpoint best, latest or an existing checkpoint path' % path
        raise UsageError('no %s checkpoint in %s; %s' % (which, run.path, advice))
    problem = checkpoint_problem(path) if which not in ('best', 'latest') else None
    if problem:
        raise UsageError('checkpoint %s cannot be read: %s; name another one, or use --checkpoint best or latest'
                         % (path, problem))
    return path


ROTATION_TRIES, ROTATION_SECONDS, ROTATION_PAUSE = 4, 60, 0.1  # see _rotating


def _rotating(run, which, tries):
    """Whether checkpoint ``which`` of ``run`` may be looked for again (after a pause), the ``tries``-th time:
    'best' or 'latest', a few times, and for as long as ROTATION_SECONDS while a trainer holds the run (it
    replaces best/ and prunes old checkpoints while we read them)."""
    if which not in ('best', 'latest') or (tries > ROTATION_TRIES and (
            tries * ROTATION_PAUSE > ROTATION_SECONDS or lifecycle.holder(run.path) is None)):
        return False
    time.sleep(ROTATION_PAUSE)
    return True


def restore_found(session, run, which):
    """Finds checkpoint ``which`` in ``run`` and restores it into ``session``; returns its prefix.

    'best' and 'latest' are looked up again when the checkpoint disappears
    between finding and reading it (a training run rotating it away).
    """
    for tries in itertools.count(1):
        path = find_checkpoint(run, which)
        try:
            restore(session, path)
            return path
        except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError):  # ValueError: Saver found no index
            if not _rotating(run, which, tries):
                raise UsageError('checkpoint %s disappeared or changed while it was read; run the command again'
                                 % path)


def fold_bn_default(frozen=False):
    """Whether an inference graph folds batch norm, as ``config.FOLD_BN`` says: 'on' always, 'frozen' only in a
    frozen graph (``frozen=True``: its constant kernels are folded once), 'off' never."""
    return config.FOLD_BN == 'on' or (frozen and config.FOLD_BN == 'frozen')


def restore(session, checkpoint):
    """Restores every global variable of ``session.graph`` from ``checkpoint``, after checking that they fit."""
    with session.graph.as_default():
        variables = v1.global_variables()
        check_checkpoint(checkpoint, variables)
        v1.train.Saver(variables).restore(session, checkpoint)


class RestoredRun(object):
    """A run's network rebuilt in its own graph with a checkpoint restored.

    Attributes: run (RunDir), config (dict), checkpoint (path), graph, session,
    model (ResNet with input_x / probabilities ...), loader (DataLoader with the run's normalisation; None for an
    imported run, which records no data set), preprocessor (resize + normalise), class_names [num_classes].
    fold_bn: fold batch norm into the convolutions (``ResNet``'s option; the same outputs within rounding);
    None: as ``config.FOLD_BN`` says for session graphs.
    """

    def __init__(self, model_dir, checkpoint='best', fold_bn=None, dataset=None, data_dir=''):
        self.run = RunDir(model_dir, writable=False)  # evaluate, predict and export never write into a run
        self.config = self.run.require_config()
        find_checkpoint(self.run, checkpoint)  # before the data and the graph: no checkpoint fails fast
        cfg = self.config
        try:
            check_data_format(cfg.data_format)
        except ValueError as e:
            raise UsageError('%s was trained with %s' % (model_dir, e))
        # An imported run records no data set (dataset null): it has a preprocessor and class names only,
        # unless a data set is given (evaluate --dataset), read with the run's own preprocessing.
        self.dataset = dataset
        if dataset is None:
            dataset, data_dir = cfg.dataset, data_dir or cfg.data_dir  # its own, maybe moved
        self.loader = None if dataset is None else DataLoader(
            dataset, data_dir, cfg.image_size, cfg.mean, cfg.std, **source_options(cfg))
        if not cfg.channels and self.loader:  # runs saved before channels was recorded: the data's own
            cfg = self.config = cfg.replace(channels=self.loader.channels)
        try:  # a hand-edited image_size or width could ask for more than the machine has
            imported.check_image_size(cfg, flags=())
        except UsageError as e:
            raise UsageError('%s describes a network that cannot run here: %s' % (self.run.join('config.json'), e))
        try:
            self.preprocessor = (self.loader.preprocessor if self.loader else
                                 Preprocessor(cfg.image_size, cfg.mean, cfg.std, cfg.channels))
            self.class_names = cfg.class_names or (self.loader.source.class_names if self.loader else [])
            if len(self.class_names) != cfg.num_classes:  # runs imported before class_names were recorded
                self.class_names = imported.class_names(cfg.num_classes)
            self.graph = tf.Graph()
            with self.graph.as_default():
                self.model = ResNet.from_config(cfg, training=False,
                                                fold_bn=fold_bn_default() if fold_bn is None else fold_bn)
        except (ValueError, TypeError) as e:  # a hand-edited value that the records' type checks let through
            raise UsageError('%s does not describe a network this version can build (%s); restore the file (or '
                             'train into a new --model_dir)' % (self.run.join('config.json'),
                                                                 str(e).strip().splitlines()[0]))
        self.session = v1.Session(graph=self.graph)
        self.checkpoint = restore_found(self.session, self.run, checkpoint)

    def evaluate(self, split):
        """Metrics of the checkpoint on ``split`` of the data set: ``evaluate_ids``'s + dataset, label_offset."""
        offset = imported.check_dataset(self.config, self.run.path, self.loader and self.loader.num_classes,
                                        self.dataset)
        from resnet_graph.data.source import check_splits
        check_splits(self.loader.source, self.config.validation_fraction, (split,))
        metrics = evaluate_ids(self.session, self.model, self.loader, self.loader.source.splits[split],
                               batch_size=self.evaluation_batch(), label_offset=offset)
        return dict(metrics, dataset=self.loader.source.name, label_offset=offset)

    def evaluation_batch(self):
        """config.EVAL_BATCH_SIZE, or the largest batch under it whose inference pass fits the memory left (the
        command's check was for one image; the metrics do not depend on the batch)."""
        from resnet_graph.training import memory
        room = memory.limit(training=False)
        cfg = self.config.replace(batch_size=config.EVAL_BATCH_SIZE)
        channels = cfg.channels or 3
        if room is None or memory.total(memory.estimate(cfg, channels, cfg.num_classes, training=False)) <= room[0]:
            return cfg.batch_size
        return max(1, memory.largest_batch(cfg, channels, cfg.num_classes, room[0], training=False))

    def close(self):
        self.session.close()
