"""The training loop: session, savers, event writers, periodic batched validation, best record, resume, signals.

What a crash or a kill can leave, and why every state resumes:
- rolling checkpoints are saved after each validation, files first and the
  ``checkpoint`` state last (checkpoints.py), and ``RunDir.latest_checkpoint``
  takes the newest checkpoint that really loads (repairing a stale state);
- at a validation the best checkpoint and ``best.json`` are written before the
  rolling checkpoint of that step, so a resumed run repeats the validation
  rather than skipping one;
- SIGTERM or Ctrl-C: the step in flight finishes, a checkpoint is saved and
  the run ends (exit 0 / 130); a second signal ends the process at once,
  which the points above make safe.
"""
import contextlib
import math
import os
import time

import tensorflow as tf

from data_loader import DataLoader
from resnet_graph.training import finetune, lifecycle, optim, summaries, towers
from resnet_graph.errors import UsageError
from resnet_graph.data.pipeline import steps_per_epoch
from resnet_graph.data.source import check_splits, source_options
from resnet_graph.serving.inference import check_checkpoint, evaluate_ids
from resnet_graph.training.checkpoints import CheckpointKeeper, CheckpointWriteError
from resnet_graph.training.run_dir import RunDir

v1 = tf.compat.v1
tf.get_logger().setLevel('ERROR')  # deprecation notices of tf.compat.v1 would drown the progress lines


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss, a checkpoint that cannot be written); the message says why."""


def _duration(seconds):
    seconds = int(max(seconds, 0))
    return '%dm%02ds' % divmod(seconds, 60) if seconds < 3600 else '%dh%02dm' % (seconds // 3600, seconds % 3600 // 60)


class Trainer(object):
    """Trains one run directory from a resolved configuration.

    Args:
      cfg: a ``config.RunConfig`` (model_dir set); ``self.cfg`` is it with
        the data set's num_classes, channels, mean and std filled in.
      log: a print-like function for progress lines.
    """

    def __init__(self, cfg, log=print):
        self.log = log
        self.run = RunDir(cfg.model_dir)
        self.loader = DataLoader(cfg.dataset, cfg.data_dir, cfg.image_size, cfg.mean, cfg.std,
                                 augment=cfg.augment, **source_options(cfg))
        # At start: never a best record of 0 images.
        check_splits(self.loader.source, cfg.validation_fraction, ('train', 'validation'))
        self.cfg = cfg.replace(num_classes=self.loader.num_classes, channels=self.loader.channels,
                               mean=self.loader.mean, std=self.loader.std)
        self.steps_per_epoch = steps_per_epoch(len(self.loader.train_ids), cfg.batch_size)
        self.total_steps = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        if cfg.batch_size > len(self.loader.train_ids):  # allowed (tiny data sets), but never silently
            log('--batch_size %d is larger than the training split (%d images): each step repeats images to fill '
                'its batch, and an epoch is one step' % (cfg.batch_size, len(self.loader.train_ids)))
        self.eval_every = cfg.eval_every or self.steps_per_epoch
        self.skipped = 0
        self.overflows = 0  # --dtype float16: steps skipped by the dynamic loss scale

    def _build(self, start_step):
        cfg = self.cfg
        graph = tf.Graph()
        with graph.as_default(), self._graph_scope():
            v1.set_random_seed(cfg.seed)
            dataset = self.loader.train_dataset(cfg.batch_size, cfg.seed, start_step, self.total_steps)
            if self.repeat_data:
                dataset = dataset.repeat()
            self.iterator = v1.data.make_initializable_iterator(dataset)
            images, labels = self.iterator.get_next()
            # Fed from the pipeline by default, still feedable by name for validation.
            images = v1.placeholder_with_default(images, [None] + images.shape[1:], name='input_x')
            labels = v1.placeholder_with_default(labels, [None], name='input_y')
            self.model = towers.build_model(cfg, self.warm_start_from, images, labels)  # one tower per device
            self.global_step = v1.train.get_or_create_global_step()
            trained, self.frozen = finetune.split(self.model, cfg.freeze_stages)
            self.train_op, self.learning_rate, gradient_norm, self.applied = optim.build_train_step(
                cfg, self.model, self.global_step, self.steps_per_epoch, self.total_steps, var_list=trained,
                update_ops=finetune.update_ops(self.model, self.frozen),
                gradients=towers.gradients(self.model, cfg.label_smoothing), wrap_optimizer=self.wrap_optimizer)
            self.summary_op = summaries.train_summary(self.model, self.learning_rate, gradient_norm,
                                                      cfg.mean, cfg.std)
            self.histogram_op = summaries.histogram_summary(self.model) if cfg.histogram_every else None
            self.config_op = summaries.config_summary(cfg)
            self.confusion = summaries.ConfusionSummary()
            self.saver = v1.train.Saver()  # checkpoints.CheckpointKeeper keeps the newest of each directory
            self.init_op = v1.global_variables_initializer()
        graph.finalize()
        return graph

    # Scale-out hooks (resnet_graph/training/towers.py, distributed.py): a cluster's trainer overrides them.
    wrap_optimizer = None  # or a function optimizer -> optimizer
    repeat_data = False  # the data order repeats instead of ending at the last step

    def _graph_scope(self):
        """A context manager around the graph's construction (a cluster's device placement)."""
        return contextlib.nullcontext()

    def _session(self, graph):
        """The training session: local, with the towers' CPU devices when --num_devices asks for them."""
        return v1.Session(graph=graph, config=towers.session_config(self.cfg))

    def _restore_or_init(self, sess, latest):
        if latest:
            check_checkpoint(latest, self.saver._var_list)
            self.saver.restore(sess, latest)
        else:
            sess.run(self.init_op)
        sess.run(self.iterator.initializer)
        meta, run = {}, self.run  # one MetaGraphDef export for both; each keeper prunes what a restart found too
        self.rolling, self.best_keeper = (CheckpointKeeper(self.saver, path, keep, run.checkpoints(path), meta)
                                          for path, keep in ((run.path, self.cfg.max_to_keep), (run.best_dir, 1)))

    def _save(self, keeper, sess, step, source=None):
        """Saves the checkpoint of ``step`` with ``keeper`` (as a copy of checkpoint ``source`` if given); returns
        its prefix. A full disk or a read-only directory becomes a TrainingError (older files stay)."""
        try:
            return keeper.copy(source, step) if source else keeper.save(sess, step)
        except CheckpointWriteError as e:
            raise TrainingError('cannot write a checkpoint at step %d in %s: %s; the earlier checkpoints are '
                                'intact: free space or fix permissions, then run the same command to resume'
                                % (step, keeper.directory, e))

    def _validate(self, sess, step, writer, best):
        """Evaluates the validation split; saves best/ and best.json on improvement. Returns the best record."""
        metrics = evaluate_ids(sess, self.model, self.loader, self.loader.validation_ids)
        regularization = sess.run(self.model.regularization_loss)
        finite = math.isfinite(metrics['loss'])
        improved = finite and (best is None or metrics['accuracy'] > best['validation_accuracy'])
        # the events first: a kill after best/ is saved resumes from it, past this step's validation
        summaries.scalars(writer, step, loss=metrics['loss'] + regularization, cross_entropy=metrics['loss'],
                          accuracy=metrics['accuracy'], top5_accuracy=metrics['top5'])
        self.confusion.write(sess, writer, step, metrics['confusion'])
        writer.flush()
        if improved:
            path = self._save(self.best_keeper, sess, step)
            best = dict(step=step, validation_accuracy=metrics['accuracy'], validation_loss=metrics['loss'],
                        checkpoint=path, time=time.strftime('%Y-%m-%dT%H:%M:%S%z'))
            self.run.save_best(best)
        state = 'new best' if improved else 'best stays %.4f at step %d' % (
            best['validation_accuracy'], best['step']) if best else 'no best yet'
        self.log('eval step %d: validation loss %.4f accuracy %.4f top5 %.4f (%d images); %s'
                 % (step, metrics['loss'], metrics['accuracy'], metrics['top5'], metrics['images'], state))
        return best

    def train(self):
        """Runs (or resumes) training to the final step, holding the run directory's lock (lifecycle.hold).

        Returns a dict: step, stopped (the signal number, or None), best (the
        best record), test (metrics of the best checkpoint; absent when stopped).
        Raises TrainingError when training cannot go on, UsageError when another trainer holds the directory.
        """
        with lifecycle.hold(self.run):
            return self._train()

    def _rebuild_best(self, sess, step, writer, best, latest):
        """A resumed run whose best record is missing or damaged: a best/ checkpoint that loads is evaluated and
        kept as the best (it may beat the newer rolling ones); without one, the restored checkpoint becomes it."""
        if best is not None or step == 0:
            return best
        kept = self.run.best_checkpoint()
        if kept and self.run.step_of(kept):
            self.saver.restore(sess, kept)
            metrics = evaluate_ids(sess, self.model, self.loader, self.loader.validation_ids)
            best = dict(step=self.run.step_of(kept), validation_accuracy=metrics['accuracy'],
                        validation_loss=metrics['loss'], checkpoint=kept, time=time.strftime('%Y-%m-%dT%H:%M:%S%z'))
            self.run.save_best(best)
            self.run.warn('best record rebuilt from %s: validation accuracy %.4f' % (kept, metrics['accuracy']))
            self.saver.restore(sess, latest)  # training goes on from the newest checkpoint
            return best
        if not os.path.exists(self.run.join('best.json')):  # a damaged one: RunDir.load_best warned
            self.log('no best record yet (stopped before a validation): validating the checkpoint of step %d' % step)
        return self._validate(sess, step, writer, None)

    def _train(self):
        cfg, run = self.cfg, self.run
        latest = lifecycle.resume_point(run)
        start = int(tf.train.load_variable(latest, 'global_step')) if latest else 0
        self.warm_start_from = '' if latest else cfg.warm_start_from  # a resumed run restores its own
        try:  # built before the run directory is written, so a bad warm start leaves nothing behind
            graph = self._build(start)
        except finetune.FineTuneError as e:
            raise TrainingError(e)
        run.create()
        run.save_config(cfg)
        best = run.load_best()
        if latest:
            self.log('resuming from %s at step %d' % (latest, start))
        self.log('training ResNet-%d on %s: %d steps (%d per epoch, batch %d), model_dir %s'
                 % (cfg.depth, cfg.dataset, self.total_steps, self.steps_per_epoch, cfg.batch_size,
                    run.path))
        for line in ([optim.describe(cfg)] + finetune.describe(self.model, self.frozen)
                     + towers.describe(self.model, cfg.batch_size)):
            self.log(line)
        with graph.as_default(), self._session(graph) as sess, lifecycle.StopOnSignal() as stop:
            self._restore_or_init(sess, latest)
            train_writer = summaries.EventWriter(run.join('train'), graph if start == 0 else None)
            eval_writer = summaries.EventWriter(run.join('eval'))
            if start == 0:
                train_writer.add_summary(sess.run(self.config_op), 0)
            best = self._rebuild_best(sess, start, eval_writer, best, latest)
            try:
                step, best = self._loop(sess, start, best, train_writer, eval_writer, stop)
            except (tf.errors.OpError, UsageError) as e:
                self._stop_on_bad_data(sess, e)
                raise
            finally:
                for writer in (train_writer, eval_writer):
                    try:
                        writer.close()
                    except summaries.EventWriteError as e:  # must not hide why training stopped
                        self.run.warn(e)
            if stop.received:
                path = self._save(self.rolling, sess, step)
                self.log('stopped by signal %d at step %d: saved %s; run the same command to resume (events: '
                         'tensorboard --logdir %s)'
                         % (stop.received, step, path, run.path))
                return dict(step=step, stopped=stop.received, best=best)
            return self._finish(sess, step, best)

    def _loop(self, sess, step, best, train_writer, eval_writer, stop):
        """Trains from ``step`` to the last step (or a signal), logging, validating and saving on the way.

        Shared by one machine, towers and a cluster's chief: the step after a run is ``_next_step`` (other
        tasks move a cluster's global step too), so every cadence fires when a step crosses its boundary.
        Returns (step, best record).
        """
        cfg = self.cfg
        self._before_loop(sess)
        feed = {self.model.is_training: True}
        every_step = [self.train_op, self.model.loss] + ([self.applied] if self.applied is not None else [])
        logged = [self.model.accuracy, self.learning_rate, self.summary_op]
        loop_start, window_start, window_first, first = time.time(), time.time(), step, step

        def crossed(before, after, every):
            return after // every > before // every or after >= self.total_steps

        while step < self.total_steps and not stop.received:
            trace = dict(options=v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE),
                         run_metadata=v1.RunMetadata()) if step + 1 == cfg.trace_step else {}
            log_now = crossed(step, step + 1, cfg.log_every)
            values = sess.run(every_step + (logged if log_now else []), feed, **trace)
            before, step = step, self._next_step(sess, step)
            self._check_loss(values[1], values[2] if self.applied is not None else True, step)
            if trace:
                self._write_trace(step, trace['run_metadata'], train_writer)
            every = cfg.histogram_every
            if self.histogram_op is not None and step // every > before // every:
                train_writer.add_summary(sess.run(self.histogram_op), step)
            if log_now and crossed(before, step, cfg.log_every):
                now = time.time()
                rate = (step - window_first) * cfg.batch_size * self.batches_per_step / (now - window_start)
                self._log_step(step, values[1], values[-3:], rate, (now - loop_start) / (step - first))
                train_writer.add_summary(values[-1], step)
                summaries.scalars(train_writer, step, examples_per_sec=rate)
                window_start, window_first = now, step
            if crossed(before, step, self.eval_every):
                best = self._validate(sess, step, eval_writer, best)
                just_saved = best is not None and best['step'] == step  # best/ holds this step: copy its files
                self._save(self.rolling, sess, step, self.best_keeper.prefix(step) if just_saved else None)
        self._after_loop(sess)
        return step, best

    def _log_step(self, step, loss, logged, rate, seconds_per_step):
        accuracy, lr, _ = logged
        self.log('step %d/%d epoch %d loss %.4f accuracy %.4f lr %.2e %.1f examples/sec%s %s left'
                 % (step, self.total_steps, (step - 1) // self.steps_per_epoch + 1, loss, accuracy, lr, rate,
                    self.rate_note, _duration(seconds_per_step * (self.total_steps - step))))

    # The differences of a cluster's chief (distributed.ClusterTrainer overrides them).
    batches_per_step = 1  # batches one global step trains on
    rate_note = ''  # after "examples/sec" in the progress lines

    def _next_step(self, sess, step):
        """The step after one ``train_op`` run that started at ``step``."""
        return step + 1

    def _before_loop(self, sess):
        """Runs once before the first step of the loop."""

    def _after_loop(self, sess):
        """Runs once after the last step of the loop."""

    def _stop_on_bad_data(self, sess, error):
        """A record the data source refused mid-run (--strict_data, a batch with no readable image) or an event
        file that cannot be written (a UsageError too): saves the steps trained so far and raises TrainingError
        with the line. Returns for any other error."""
        message = str(error) if isinstance(error, UsageError) else getattr(self.loader.source, 'stream_error', None)
        if not message:
            return
        step = int(sess.run(self.global_step))
        path = self._save(self.rolling, sess, step)
        raise TrainingError('%s (stopped at step %d, saved %s; run the same command to resume)' % (message, step, path))

    def _check_loss(self, loss, applied, step):
        if applied and math.isfinite(loss):
            return
        if not applied and math.isfinite(loss) and self.cfg.dtype == 'float16':
            self.overflows += 1  # float16 gradients overflowed: optim.DynamicLossScale halved the scale
            return
        if not applied and self.cfg.nan_policy == 'skip':
            self.skipped += 1
            self.log('step %d: loss %s, update skipped (--nan_policy skip; %d skipped so far)'
                     % (step, loss, self.skipped))
            return
        raise TrainingError('the loss became %s at step %d; nothing was saved after it, the last good checkpoint '
                            'is %s: lower --learning_rate (or use --nan_policy skip) and run the same command'
                            % (loss, step, self.run.latest_checkpoint() or 'none (no checkpoint yet)'))

    def _write_trace(self, step, metadata, writer):
        """Writes a traced step as train/trace_step_<step>.json (Chrome trace) and as run metadata."""
        path = self.run.join('train', 'trace_step_%d.json' % step)
        summaries.write_trace(metadata, path)
        writer.add_run_metadata(metadata, 'step%d' % step, step)
        self.log('wrote a Chrome trace of step %d to %s' % (step, path))

    def _finish(self, sess, step, best):
        run = self.run
        if best is None:
            raise TrainingError('no finite validation result was ever reached, so there is no best checkpoint '
                                'in %s' % run.best_dir)
        self.saver.restore(sess, run.best_checkpoint())
        test = evaluate_ids(sess, self.model, self.loader, self.loader.test_ids)
        if self.skipped:
            self.log('%d updates were skipped for a non-finite loss' % self.skipped)
        if getattr(self.loader.source, 'skipped', None):  # files and records read by id or streamed
            self.log('%d corrupt images were skipped, each replaced by a good one of its batch (--strict_data makes '
                     'this an error)' % len(self.loader.source.skipped))
        if self.overflows:
            self.log('%d float16 updates were skipped for overflowing gradients (each halved the loss scale)'
                     % self.overflows)
        self.log('best validation accuracy %.4f at step %d' % (best['validation_accuracy'], best['step']))
        self.log('test accuracy of the best checkpoint: %.4f (top5 %.4f, loss %.4f, %d images)'
                 % (test['accuracy'], test['top5'], test['loss'], test['images']))
        self.log('checkpoints: %s (rolling, last %d kept); best: %s (best.json)'
                 % (run.latest_checkpoint(), self.cfg.max_to_keep, run.best_checkpoint()))
        self.log('events: %s and %s; view with: tensorboard --logdir %s'
                 % (run.join('train'), run.join('eval'), run.path))
        return dict(step=step, stopped=None, best=best, test=test)
