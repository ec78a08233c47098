"""Several machines on TensorFlow's own gRPC runtime: parameter servers, a chief and workers from TF_CONFIG.

Every task runs the same ``python -m resnet_graph.train ...`` command with its
own ``TF_CONFIG`` (``training/tf_config.py`` parses it before TensorFlow loads)
and starts a ``tf.compat.v1.train.Server`` for its task.

- ps: serves the variables until the chief says the run is over, then exits 0.
  ``replica_device_setter`` places each variable on a ps task: by default
  (``--ps_strategy by_size``) on the one holding the fewest bytes so far, so
  the tasks share memory and traffic evenly (tf_cnn_benchmarks does the same);
  ``--ps_strategy round_robin`` takes them in turn, TF1's default.
- chief: the ``Trainer`` itself, in a session on its server: it initialises
  the variables (or restores the latest checkpoint: a restarted chief
  resumes), trains, validates, and writes config.json, the checkpoints, the
  best record and the event files into the usual run directory; at the end
  it waits (at most ``WAIT_FOR_WORKERS_SECS``) for the workers to report
  done, evaluates the best checkpoint on the test split, and releases the
  parameter servers.
- worker: waits until the chief has initialised the variables, then trains
  until the global step reaches the run's last step, reports done and exits
  0. It writes nothing; a worker that dies and restarts simply rejoins.

Asynchronous by default: each compute task applies its own gradients to the
shared variables, so the global step can pass the last step by up to one step
per worker, and a checkpoint is a snapshot taken while the workers go on (its
``global_step`` can be past the step in its name). ``--sync_replicas``: ``SyncReplicasOptimizer`` aggregates one
gradient from each compute task per step; at the end the chief hands every
worker one more token so none stays blocked.

Each compute task reads the training data in its own order (the run's seed
plus its position among the compute tasks, the chief's being the run's own).
"""
import contextlib
import time

import tensorflow as tf

from resnet_graph.errors import warn
from resnet_graph.training import towers
from resnet_graph.training.trainer import Trainer, TrainingError

v1 = tf.compat.v1

WAIT_FOR_WORKERS_SECS = 60.0
PS_EXIT_DELAY_SECS = 2.0  # lets the chief close its session before its parameter servers go away
_STOP_QUEUE = 'resnet_graph_stop_ps%d'
_DONE_QUEUE = 'resnet_graph_workers_done'


def trainer(cfg, spec, log=print):
    """The trainer of this task of a TF_CONFIG cluster: ``ParameterServer`` or ``ClusterTrainer``."""
    if spec.task_type == 'ps':
        return ParameterServer(spec, log)
    return ClusterTrainer(cfg, spec, log)


def session_config(spec, cfg=None):
    """Each task talks only to the parameter servers and itself (so a missing worker blocks no one); a
    compute task's server also gets the CPU devices its towers name (``cfg``: the run's configuration)."""
    config = (towers.session_config(cfg) if cfg else None) or v1.ConfigProto()
    config.device_filters.extend(['/job:ps', '/job:%s/task:%d' % (spec.task_type, spec.task_index)])
    config.allow_soft_placement = True
    return config


def start_server(spec, cfg=None):
    """A gRPC ``tf.compat.v1.train.Server`` for this task of the cluster."""
    return v1.train.Server(tf.train.ClusterSpec(spec.cluster), job_name=spec.task_type, task_index=spec.task_index,
                           protocol='grpc', config=session_config(spec, cfg), start=True)


def _queue(name, device, capacity):
    """A FIFO queue of int32 tokens living on ``device``, shared by every task's graph through its name."""
    with v1.device(device):
        return v1.FIFOQueue(capacity, [tf.int32], shapes=[[]], shared_name=name, name=name)


def _stop_queues(spec):
    return [_queue(_STOP_QUEUE % i, '/job:ps/task:%d' % i, 1) for i in range(len(spec.cluster['ps']))]


class BySize(object):
    """A ``ps_strategy`` for ``replica_device_setter`` that balances the bytes on the ps tasks.

    ``planned``: {variable op name: bytes} of the variables known before the
    graph is built (the network's, from ``network_sizes``): they are dealt out
    largest first, each to the task with the fewest bytes so far, which puts
    the tasks within a few per cent of each other (dealing them in graph order
    would leave the last stage's large kernels to chance). Any other variable
    (optimizer slots, the global step) goes to the task with the fewest bytes
    when it is created. ``loads``: bytes per task; ``counts``: variables per task.
    """

    def __init__(self, num_tasks, planned=None):
        self.loads, self.counts, self.plan = [0] * num_tasks, [0] * num_tasks, {}
        planned_loads = [0] * num_tasks
        for name, size in sorted((planned or {}).items(), key=lambda item: (-item[1], item[0])):
            task = planned_loads.index(min(planned_loads))
            planned_loads[task] += size
            self.plan[name] = task

    def __call__(self, op):
        """The ps task (an index) for the variable op ``op``."""
        shape = tf.TensorShape(op.get_attr('shape'))
        task = self.plan.get(op.name, self.loads.index(min(self.loads)))
        self.loads[task] += (shape.num_elements() or 1) * tf.as_dtype(op.get_attr('dtype')).size
        self.counts[task] += 1
        return task


def network_sizes(cfg):
    """{variable name: bytes} of the network ``cfg`` describes, from a throwaway build."""
    from resnet_graph.nets.model import ResNet
    with tf.Graph().as_default():
        net = ResNet.from_config(cfg)
        return {v.op.name: v.shape.num_elements() * v.dtype.base_dtype.size for v in net.variables}


class ParameterServer(object):
    """A ps task: serves its variables until the chief enqueues the stop token on its queue."""

    def __init__(self, spec, log=print):
        self.spec, self.log = spec, log

    def train(self):
        server = start_server(self.spec)
        self.log('%s serving on %s' % (self.spec.name, self.spec.cluster['ps'][self.spec.task_index]))
        graph = tf.Graph()
        with graph.as_default():
            stop = _stop_queues(self.spec)[self.spec.task_index].dequeue()
        with v1.Session(server.target, graph=graph, config=session_config(self.spec)) as sess:
            sess.run(stop)
        time.sleep(PS_EXIT_DELAY_SECS)
        self.log('%s: the chief finished the run; stopping' % self.spec.name)
        return dict(step=None, stopped=None)


class ClusterTrainer(Trainer):
    """The chief or a worker of a TF_CONFIG cluster (see the module docstring)."""

    def __init__(self, cfg, spec, log=print):
        super().__init__(cfg, log=log)
        self.spec = spec
        self.device = '/job:%s/task:%d' % (spec.task_type, spec.task_index)
        if not spec.is_chief:  # its own data order; the chief keeps the run's seed (saved in config.json)
            self.cfg = self.cfg.replace(seed=self.cfg.seed + spec.replica_index)
        self.sync = None
        self.server = start_server(spec, self.cfg)

    # A compute task can run more steps than the run has (its stale gradients are dropped in sync mode, the
    # global step moves on without it in async mode), so its data order repeats instead of running out.
    repeat_data = True

    # -- graph -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _graph_scope(self):
        num_ps = len(self.spec.cluster['ps'])
        by_size = self.cfg.ps_strategy == 'by_size'
        strategy = BySize(num_ps, network_sizes(self.cfg)) if by_size and num_ps > 1 else None
        setter = v1.train.replica_device_setter(cluster=tf.train.ClusterSpec(self.spec.cluster),
                                                worker_device=self.device, ps_strategy=strategy)
        with v1.device(setter):
            yield
        if strategy is not None and self.spec.is_chief:
            self.log('variables by size on %d ps tasks: %s' % (num_ps, ', '.join(
                'ps%d %.2f MB (%d)' % (i, load / 2.0 ** 20, count)
                for i, (load, count) in enumerate(zip(strategy.loads, strategy.counts)))))
        # Built last, outside the setter: what the tasks tell each other.
        # The shared (global) variables only: a task's local ones (the sync local step) are its own to initialise.
        self.ready_op = None if self.spec.is_chief else v1.report_uninitialized_variables(v1.global_variables())
        self.release_ps = [q.enqueue(1) for q in _stop_queues(self.spec)]
        done = _queue(_DONE_QUEUE, '/job:ps/task:0', 1000)
        self.report_done, self.take_done = done.enqueue(1), done.dequeue()
        if self.sync is not None:
            workers = len(self.spec.compute_tasks)
            self.sync_chief_init = self.sync.chief_init_op
            self.sync_queue_runner = self.sync.get_chief_queue_runner()
            self.sync_init_tokens = self.sync.get_init_tokens_op()
            self.sync_release = self.sync.get_init_tokens_op(workers)
            self.sync_local_init = self.sync.local_step_init_op
            self.sync.ready_for_local_init_op.mark_used()  # SyncReplicasOptimizer's, for MonitoredTrainingSession

    def wrap_optimizer(self, optimizer):
        """With --sync_replicas: SyncReplicasOptimizer over every compute task; else the optimizer itself."""
        if not self.cfg.sync_replicas:
            return optimizer
        workers = len(self.spec.compute_tasks)
        self.sync = v1.train.SyncReplicasOptimizer(optimizer, replicas_to_aggregate=workers,
                                                   total_num_replicas=workers)
        return self.sync

    def _session(self, graph):
        return v1.Session(self.server.target, graph=graph, config=session_config(self.spec, self.cfg))

    # -- the chief: Trainer.train, its loop reading the global step ---------------------------

    def train(self):
        if self.spec.is_chief:
            self.log('chief of a cluster of %d compute task(s) and %d parameter server(s), %s'
                     % (len(self.spec.compute_tasks), len(self.spec.cluster['ps']),
                        'synchronous' if self.cfg.sync_replicas else 'asynchronous'))
            return super().train()
        return self._work()

    @property
    def batches_per_step(self):
        return len(self.spec.compute_tasks) if self.sync is not None else 1

    rate_note = ' (cluster)'

    def _next_step(self, sess, step):
        return int(sess.run(self.global_step))  # other tasks move it too

    def _before_loop(self, sess):
        self.coordinator = None
        if self.sync is not None:
            sess.run(self.sync_local_init)
            sess.run([self.sync_chief_init, self.sync_init_tokens])
            self.coordinator = v1.train.Coordinator()
            self.sync_queue_runner.create_threads(sess, coord=self.coordinator, daemon=True, start=True)

    def _after_loop(self, sess):
        if self.sync is not None:
            sess.run(self.sync_release)  # a worker blocked on its next token gets one and sees the last step
            self.coordinator.request_stop()

    def _finish(self, sess, step, best):
        self._wait_for_workers(sess)
        result = super()._finish(sess, step, best)
        sess.run(self.release_ps)
        return result

    def _wait_for_workers(self, sess):
        """Takes one done report per worker, giving up after WAIT_FOR_WORKERS_SECS (a worker that died)."""
        missing = len(self.spec.compute_tasks) - 1
        deadline = time.time() + WAIT_FOR_WORKERS_SECS
        while missing and time.time() < deadline:
            try:
                sess.run(self.take_done, options=v1.RunOptions(timeout_in_ms=1000))
                missing -= 1
            except tf.errors.DeadlineExceededError:
                pass
        if missing:
            warn('%d worker(s) did not report the end of the run within %.0f s; finishing without them'
                 % (missing, WAIT_FOR_WORKERS_SECS))

    # -- a worker ------------------------------------------------------------------------

    def _work(self):
        """Trains until the global step reaches the last step; returns dict(step, stopped=None)."""
        self.warm_start_from = ''  # the chief initialises (or restores) every variable
        graph = self._build(0)
        self.log('%s of a cluster: waiting for the chief to initialise the variables' % self.spec.name)
        with graph.as_default(), self._session(graph) as sess:
            while len(sess.run(self.ready_op)):
                time.sleep(0.5)
            sess.run(self.iterator.initializer)
            if self.sync is not None:
                sess.run(self.sync_local_init)
            step, steps, feed = int(sess.run(self.global_step)), 0, {self.model.is_training: True}
            self.log('%s: joined at step %d' % (self.spec.name, step))
            try:
                while step < self.total_steps:
                    _, loss = sess.run([self.train_op, self.model.loss], feed)
                    step, steps = int(sess.run(self.global_step)), steps + 1
                    if steps % self.cfg.log_every == 0:
                        self.log('%s: step %d/%d loss %.4f (%d steps here)' % (self.spec.name, step,
                                                                            self.total_steps, loss, steps))
                sess.run(self.report_done)
            except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError) as e:
                raise TrainingError('%s lost the cluster at step %d (%s); restart it with the same command to '
                                    'rejoin' % (self.spec.name, step, str(e).splitlines()[0]))
        self.log('%s: done at step %d (%d steps here)' % (self.spec.name, step, steps))
        return dict(step=step, stopped=None)
