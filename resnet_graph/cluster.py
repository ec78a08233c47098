"""TF_CONFIG, the scaling-out flags, and a whole cluster as local processes.

``python -m resnet_graph.cluster --ps 1 --workers 2 -- <train flags>`` starts
one ``python -m resnet_graph.train <train flags>`` per task on free loopback
ports (127.0.0.1 only), each with its ``TF_CONFIG``: ``--workers N`` compute
tasks, the first being the chief (job ``chief``) and the others ``worker``
0 .. N-2, plus ``--ps`` parameter servers. Their output is streamed with a
``[chief]`` / ``[worker0]`` / ``[ps0]`` prefix. The launcher exits with the
chief's code once the chief has ended and every other task has exited (or
was stopped: SIGTERM after ``--grace_secs``, then SIGKILL); Ctrl-C passes
SIGINT to the chief and the workers (the chief saves a checkpoint) and
stops the parameter servers; SIGTERM stops every task. Before any task
starts, the train flags are checked once, by the chief's own checks
(``CHECK_ONLY``): a bad one is one line, not one per task.

Nothing here imports TensorFlow: TF_CONFIG (``training/tf_config.py``) and the
flags are checked before it loads.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import config
from resnet_graph.errors import UsageError, require
from resnet_graph.training.tf_config import DEVICE_PATTERN, Task

# Set in its environment, resnet_graph.train checks its flags, TF_CONFIG and run directory, then exits (0: they
# are good) before TensorFlow loads or anything is written: the launcher's check before it starts the tasks.
CHECK_ONLY = 'RESNET_GRAPH_CHECK_ONLY'


def validate_flags(cfg):
    """Raises UsageError for a scaling-out flag out of range (train.validate calls it)."""
    require(cfg.num_devices >= 1, '--num_devices must be at least 1, got %s' % cfg.num_devices)
    bad = [d for d in cfg.devices if not DEVICE_PATTERN.match(d)]
    require(not bad, '--devices %s: each device is /cpu:N or /gpu:N, e.g. --devices /gpu:0,/gpu:1' % ','.join(bad))
    require(len(set(d.lower() for d in cfg.devices)) == len(cfg.devices),
            '--devices names a device twice: %s' % ','.join(cfg.devices))
    towers = len(cfg.devices) or cfg.num_devices
    require(cfg.batch_size % towers == 0, '--batch_size %d does not split into %d towers; use a multiple of %d'
            % (cfg.batch_size, towers, towers))
    require(not cfg.sync_bn or towers > 1, '--sync_bn synchronises batch norm across towers: use it with '
            '--num_devices 2 or more, or drop it (--nosync_bn)')
    if cfg.sync_replicas:
        require(cfg.nan_policy == 'stop', '--sync_replicas cannot skip updates: use --nan_policy stop')
        require(cfg.optimizer != 'adamw', '--sync_replicas does not support --optimizer adamw (its decoupled '
                'decay would apply once per worker); use adam or momentum')


def validate_for_cluster(cfg, spec, asked):
    """Raises UsageError for a flag that needs a TF_CONFIG cluster (``spec``) or cannot run in one.

    asked: the flags given on the command line (a resumed run's saved
    ``sync_replicas`` is no error on one machine: the run goes on unsynchronised).
    """
    require(spec is not None or 'sync_replicas' not in asked or not cfg.sync_replicas,
            '--sync_replicas synchronises the workers of a TF_CONFIG cluster and there is no TF_CONFIG; drop it, '
            'or set TF_CONFIG (python -m resnet_graph.cluster starts a local cluster)')
    require(spec is None or not cfg.sync_bn, '--sync_bn synchronises the towers of one machine; it is not '
            'supported in a TF_CONFIG cluster: drop it (--nosync_bn)')


# -- the local launcher ------------------------------------------------------------


def free_ports(count):
    """``count`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_cluster(ps, workers):
    """{job: [127.0.0.1:port]} with one chief, ``workers - 1`` workers and ``ps`` parameter servers."""
    ports = iter(free_ports(ps + workers))
    cluster = {'chief': ['127.0.0.1:%d' % next(ports)]}
    if workers > 1:
        cluster['worker'] = ['127.0.0.1:%d' % next(ports) for _ in range(workers - 1)]
    cluster['ps'] = ['127.0.0.1:%d' % next(ports) for _ in range(ps)]
    return cluster


def _stream(name, pipe, lock):
    for line in iter(pipe.readline, ''):
        with lock:
            sys.stdout.write('[%s] %s' % (name, line if line.endswith('\n') else line + '\n'))
            sys.stdout.flush()
    pipe.close()


def _stop(processes, sig):
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)


def check_train_args(cluster, train_args):
    """Runs the chief's checks of ``train_args`` (and of TF_CONFIG and the run directory) in one train process.

    Returns: None when they pass. Raises UsageError with train's line (a bad flag); a check that failed otherwise
    (a crash) is its output and exit code, as a SystemExit; --help among them: train's usage, SystemExit(0).
    """
    from resnet_graph.cli import help_request
    asked = help_request('resnet_graph.train', ['train'] + list(train_args))[0]  # raises for --help=maybe
    env = dict(os.environ, TF_CONFIG=json.dumps(dict(cluster=cluster, task=dict(type='chief', index=0))))
    env[CHECK_ONLY] = '1'
    result = subprocess.run([sys.executable, '-m', 'resnet_graph.train'] + list(train_args), env=env, text=True,
                            stdout=None if asked else subprocess.DEVNULL, stderr=subprocess.PIPE)
    if asked and not result.returncode:  # train's usage, printed once: no cluster to start
        raise SystemExit(0)
    prefix = 'resnet_graph.train: error: '
    if result.returncode == 2 and result.stderr.startswith(prefix) and len(result.stderr.splitlines()) == 1:
        raise UsageError(result.stderr[len(prefix):].strip())
    if result.returncode:
        sys.stderr.write(result.stderr)
        raise SystemExit(result.returncode)


def launch(ps, workers, train_args, grace_secs):
    """Runs the cluster to its end; returns the chief's exit code (see the module docstring)."""
    cluster = local_cluster(ps, workers)
    check_train_args(cluster, train_args)
    env = dict(os.environ)
    lock = threading.Lock()
    tasks = [(job, i) for job in ('ps', 'worker', 'chief') for i in range(len(cluster.get(job, [])))]
    processes, threads = {}, []

    def interrupt(signum, frame):  # Ctrl-C: the chief saves a checkpoint and ends, which ends the launch
        _stop([p for n, p in processes.items() if not n.startswith('ps')], signal.SIGINT)

    def terminate(signum, frame):  # SIGTERM: stop every task (the finally below), exit 143
        raise SystemExit(128 + signum)

    # Python handlers, not SIG_IGN: an ignored signal would stay ignored in the children.
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, interrupt),
                signal.SIGTERM: signal.signal(signal.SIGTERM, terminate)}
    try:
        for job, index in tasks:
            spec = Task(cluster, job, index)
            env['TF_CONFIG'] = json.dumps(dict(cluster=cluster, task=dict(type=job, index=index)))
            process = subprocess.Popen([sys.executable, '-m', 'resnet_graph.train'] + list(train_args), env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       start_new_session=True)
            processes[spec.name] = process
            threads.append(threading.Thread(target=_stream, args=(spec.name, process.stdout, lock), daemon=True))
            threads[-1].start()
        chief = processes['chief']
        code = chief.wait()
        # After a clean end the parameter servers and workers exit by themselves; otherwise nothing waits for them.
        deadline = time.time() + (grace_secs if code == 0 else 0)
        for process in processes.values():
            try:
                process.wait(timeout=max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        left = [n for n, p in processes.items() if p.poll() is None]
        if left:
            print('[cluster] the chief exited with code %d; stopping %s' % (code, ', '.join(left)), flush=True)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        alive = list(processes.values())
        _stop(alive, signal.SIGTERM)
        for process in alive:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in threads:
            thread.join(timeout=5)


def main(args):
    from absl import flags
    FLAGS = flags.FLAGS
    require(FLAGS.ps >= 1, '--ps must be at least 1, got %d' % FLAGS.ps)
    require(FLAGS.workers >= 1, '--workers must be at least 1 (the chief), got %d' % FLAGS.workers)
    require(0 <= FLAGS.grace_secs < float('inf'), '--grace_secs must be a number of seconds, 0 or more, got %s'
            % FLAGS.grace_secs)  # inf, or nan, would wait for a hung task for ever
    most = 4 * (os.cpu_count() or 1)  # each task is a whole TensorFlow process on this one machine
    require(FLAGS.ps + FLAGS.workers <= most, '--ps %d --workers %d start %d TensorFlow processes on this machine '
            'of %d cores; at most %d: this command tries out a cluster, a real one runs on several machines with '
            'TF_CONFIG' % (FLAGS.ps, FLAGS.workers, FLAGS.ps + FLAGS.workers, os.cpu_count() or 1, most))
    return launch(FLAGS.ps, FLAGS.workers, args, FLAGS.grace_secs)


def cli_main():
    from absl import flags
    from resnet_graph import cli
    defaults = config.COMMANDS['cluster']
    flags.DEFINE_integer('ps', defaults['ps'], 'Parameter servers.')
    flags.DEFINE_integer('workers', defaults['workers'], 'Compute tasks: the chief and N - 1 workers.')
    flags.DEFINE_float('grace_secs', defaults['grace_secs'], 'After the chief ends, how long the other tasks get '
                       'to exit by themselves before they are stopped.')
    cli.run('resnet_graph.cluster', main)


if __name__ == '__main__':
    cli_main()
