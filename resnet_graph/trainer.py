"""The training loop: session, savers, event writers, periodic batched validation, best record, resume, signals."""
import signal
import time

import tensorflow as tf

from data_loader import DataLoader
from resnet_graph import optim
from resnet_graph import summaries
from resnet_graph.data.pipeline import steps_per_epoch
from resnet_graph.inference import evaluate_ids
from resnet_graph.model import ResNet
from resnet_graph.run_dir import RunDir

v1 = tf.compat.v1
tf.get_logger().setLevel('ERROR')  # deprecation notices of tf.compat.v1 would drown the progress lines


def _duration(seconds):
    seconds = int(max(seconds, 0))
    return '%dm%02ds' % divmod(seconds, 60) if seconds < 3600 else '%dh%02dm' % (seconds // 3600, seconds % 3600 // 60)


class _StopOnSignal(object):
    """Turns SIGTERM into a flag the loop checks after each step (then it saves and ends)."""

    def __init__(self):
        self.received = None

    def __enter__(self):
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._previous)


class Trainer(object):
    """Trains one run directory from a resolved configuration.

    Args:
      cfg: dict with every key of ``config.TRAIN`` (model_dir set); the data
        set adds num_classes, channels, mean and std.
      log: a print-like function for progress lines.
    """

    def __init__(self, cfg, log=print):
        self.log = log
        self.run = RunDir(cfg['model_dir'])
        self.loader = DataLoader(cfg['dataset'], cfg['data_dir'], cfg['image_size'], cfg.get('mean'), cfg.get('std'))
        self.cfg = dict(cfg, num_classes=self.loader.num_classes, channels=self.loader.channels,
                        mean=self.loader.mean, std=self.loader.std)
        self.steps_per_epoch = steps_per_epoch(len(self.loader.train_ids), cfg['batch_size'])
        self.total_steps = cfg['max_steps'] or cfg['epochs'] * self.steps_per_epoch
        self.eval_every = cfg['eval_every'] or self.steps_per_epoch

    def _build(self, start_step):
        cfg = self.cfg
        graph = tf.Graph()
        with graph.as_default():
            v1.set_random_seed(cfg['seed'])
            dataset = self.loader.train_dataset(cfg['batch_size'], cfg['seed'], start_step, self.total_steps)
            self.iterator = v1.data.make_initializable_iterator(dataset)
            images, labels = self.iterator.get_next()
            # Fed from the pipeline by default, still feedable by name for validation.
            images = v1.placeholder_with_default(images, [None] + images.shape[1:], name='input_x')
            labels = v1.placeholder_with_default(labels, [None], name='input_y')
            self.model = ResNet.from_config(cfg, input_tensor=images, label_tensor=labels)
            self.global_step = v1.train.get_or_create_global_step()
            self.learning_rate = optim.exponential_decay(cfg['learning_rate'], cfg['learning_decay_rate'],
                                                         cfg['learning_decay_steps'], self.global_step)
            self.train_op, gradient_norm = optim.train_op(self.model.loss, self.learning_rate, self.global_step,
                                                          self.model.update_ops)
            self.summary_op = summaries.train_summary(self.model, self.learning_rate, gradient_norm,
                                                      cfg['mean'], cfg['std'])
            self.histogram_op = summaries.histogram_summary(self.model) if cfg['histogram_every'] else None
            self.config_op = summaries.config_summary(cfg)
            self.confusion = summaries.ConfusionSummary()
            self.saver = v1.train.Saver(max_to_keep=cfg['max_to_keep'])
            self.best_saver = v1.train.Saver(max_to_keep=1)
            self.init_op = v1.global_variables_initializer()
        graph.finalize()
        return graph

    def _restore_or_init(self, sess, latest):
        if latest:
            self.saver.restore(sess, latest)
            for saver, directory in ((self.saver, self.run.path), (self.best_saver, self.run.best_dir)):
                state = tf.train.get_checkpoint_state(directory)
                if state:  # so max_to_keep also prunes the files written before the restart
                    saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        else:
            sess.run(self.init_op)
        sess.run(self.iterator.initializer)

    def _save(self, sess, step):
        return self.saver.save(sess, self.run.checkpoint_prefix, global_step=step)

    def _validate(self, sess, step, writer, best):
        """Evaluates the validation split; saves best/ and best.json on improvement. Returns the best record."""
        metrics = evaluate_ids(sess, self.model, self.loader, self.loader.validation_ids)
        regularization = sess.run(self.model.regularization_loss)
        summaries.scalars(writer, step, loss=metrics['loss'] + regularization, cross_entropy=metrics['loss'],
                          accuracy=metrics['accuracy'], top5_accuracy=metrics['top5'])
        self.confusion.write(sess, writer, step, metrics['confusion'])
        writer.flush()
        improved = best is None or metrics['accuracy'] > best['validation_accuracy']
        if improved:
            path = self.best_saver.save(sess, self.run.join('best', 'model.ckpt'), global_step=step)
            best = dict(step=step, validation_accuracy=metrics['accuracy'], validation_loss=metrics['loss'],
                        checkpoint=path, time=time.strftime('%Y-%m-%dT%H:%M:%S%z'))
            self.run.save_best(best)
        self.log('eval step %d: validation loss %.4f accuracy %.4f top5 %.4f (%d images); %s'
                 % (step, metrics['loss'], metrics['accuracy'], metrics['top5'], metrics['images'],
                    'new best' if improved else 'best stays %.4f at step %d' % (best['validation_accuracy'],
                                                                                 best['step'])))
        return best

    def train(self):
        """Runs (or resumes) training to the final step. Returns a dict of the results."""
        cfg, run = self.cfg, self.run
        run.create()
        run.save_config(cfg)
        latest = run.latest_checkpoint()
        start = int(tf.train.load_variable(latest, 'global_step')) if latest else 0
        graph = self._build(start)
        best = run.load_best()
        if latest:
            self.log('resuming from %s at step %d' % (latest, start))
        self.log('training ResNet-%d on %s: %d steps (%d per epoch, batch %d), model_dir %s'
                 % (cfg['depth'], cfg['dataset'], self.total_steps, self.steps_per_epoch, cfg['batch_size'],
                    run.path))
        with graph.as_default(), v1.Session(graph=graph) as sess, _StopOnSignal() as stop:
            train_writer = v1.summary.FileWriter(run.join('train'), graph if start == 0 else None)
            eval_writer = v1.summary.FileWriter(run.join('eval'))
            if start == 0:
                train_writer.add_summary(sess.run(self.config_op), 0)
            self._restore_or_init(sess, latest)
            step = start
            try:
                step, best = self._loop(sess, step, best, train_writer, eval_writer, stop)
            except KeyboardInterrupt:
                self.log('interrupted: saved %s' % self._save(sess, step_of(sess, self.global_step)))
                raise
            finally:
                train_writer.close()
                eval_writer.close()
            if stop.received:
                self.log('stopped by signal %d at step %d: saved %s; run the same command to resume'
                         % (stop.received, step, self.run.latest_checkpoint()))
                return dict(step=step, stopped=True, best=best)
            return self._finish(sess, step, best)

    def _loop(self, sess, step, best, train_writer, eval_writer, stop):
        cfg = self.cfg
        feed = {self.model.is_training: True}
        fetches = [self.train_op, self.model.loss, self.model.accuracy, self.learning_rate]
        loop_start, window_start, window_steps, summary = time.time(), time.time(), 0, None
        first = step
        while step < self.total_steps:
            trace = dict(options=v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE),
                         run_metadata=v1.RunMetadata()) if step + 1 == cfg['trace_step'] else {}
            if (step + 1) % cfg['log_every'] == 0 or step + 1 == self.total_steps:
                _, loss, accuracy, lr, summary = sess.run(fetches + [self.summary_op], feed, **trace)
            else:
                sess.run(self.train_op, feed, **trace)
            if trace:
                self._write_trace(step + 1, trace['run_metadata'], train_writer)
            step += 1
            window_steps += 1
            if self.histogram_op is not None and step % cfg['histogram_every'] == 0:
                train_writer.add_summary(sess.run(self.histogram_op), step)
            if summary is not None:
                now = time.time()
                rate = window_steps * cfg['batch_size'] / (now - window_start)
                left = (now - loop_start) / (step - first) * (self.total_steps - step)
                self.log('step %d/%d epoch %d loss %.4f accuracy %.4f lr %.2e %.1f examples/sec %s left'
                         % (step, self.total_steps, (step - 1) // self.steps_per_epoch + 1, loss, accuracy, lr,
                            rate, _duration(left)))
                train_writer.add_summary(summary, step)
                summaries.scalars(train_writer, step, examples_per_sec=rate)
                window_start, window_steps, summary = now, 0, None
            if step % self.eval_every == 0 or step == self.total_steps:
                best = self._validate(sess, step, eval_writer, best)
                self._save(sess, step)
            if stop.received:
                self._save(sess, step)
                break
        return step, best

    def _write_trace(self, step, metadata, writer):
        """Writes a traced step as train/trace_step_<step>.json (Chrome trace) and as run metadata."""
        path = self.run.join('train', 'trace_step_%d.json' % step)
        summaries.write_trace(metadata, path)
        writer.add_run_metadata(metadata, 'step%d' % step, step)
        self.log('wrote a Chrome trace of step %d to %s' % (step, path))

    def _finish(self, sess, step, best):
        run = self.run
        if best is None:  # resumed a finished run that never validated: cannot happen unless files were removed
            best = self._validate(sess, step, v1.summary.FileWriter(run.join('eval')), None)
        self.best_saver.restore(sess, run.best_checkpoint())
        test = evaluate_ids(sess, self.model, self.loader, self.loader.test_ids)
        self.log('best validation accuracy %.4f at step %d' % (best['validation_accuracy'], best['step']))
        self.log('test accuracy of the best checkpoint: %.4f (top5 %.4f, loss %.4f, %d images)'
                 % (test['accuracy'], test['top5'], test['loss'], test['images']))
        self.log('checkpoints: %s (rolling, last %d kept); best: %s (best.json)'
                 % (run.latest_checkpoint(), self.cfg['max_to_keep'], run.best_checkpoint()))
        self.log('events: %s and %s; view with: tensorboard --logdir %s'
                 % (run.join('train'), run.join('eval'), run.path))
        return dict(step=step, stopped=False, best=best, test=test)


def step_of(sess, global_step):
    return int(sess.run(global_step))
