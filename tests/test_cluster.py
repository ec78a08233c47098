"""Several machines as local processes on loopback ports (resnet_graph/cluster.py, distributed.py).

Every process is started with a timeout and stopped in a ``finally``. The network is the smallest
ResNet (depth 8 on 8x8 digits).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, error_lines, run_cli
from resnet_graph import cluster
from resnet_graph.errors import UsageError
from resnet_graph.training import tf_config

pytestmark = pytest.mark.slow  # local clusters of ps, chief and worker processes

TRAIN = ['--depth', '8', '--image_size', '8', '--batch_size', '8', '--log_every', '5']
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')


def _tf_config(cluster_spec, job, index):
    return json.dumps(dict(cluster=cluster_spec, task=dict(type=job, index=index)))


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def _launch(args, timeout):
    """Runs the launcher; returns (exit code, output). SIGTERM (which stops every task) when it runs too long."""
    launcher = subprocess.Popen([sys.executable, '-m', 'resnet_graph.cluster'] + [str(a) for a in args], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = launcher.communicate(timeout=timeout)
        return launcher.returncode, output
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
            try:
                launcher.communicate(timeout=30)
            finally:
                _stop([launcher])


def test_async_cluster_trains_to_the_stated_step_and_the_chiefs_checkpoint_evaluates(tmp_path):
    run = tmp_path / 'run'
    code, output = _launch(['--ps', 1, '--workers', 2, '--', *TRAIN, '--max_steps', 20, '--eval_every', 10,
                            '--model_dir', run], timeout=180)
    assert code == 0, output[-4000:]
    assert '[chief] chief of a cluster of 2 compute task(s) and 1 parameter server(s), asynchronous' in output
    assert re.search(r'^\[worker0\] worker0: done at step 2[01] ', output, re.M), output[-4000:]
    assert '[ps0] ps0: the chief finished the run; stopping' in output
    assert '[cluster]' not in output  # every task ended by itself
    # Asynchronous: the chief validates at the first step it sees at or past each multiple of --eval_every,
    # and the global step may pass the last step by one per extra worker.
    steps = sorted(int(m) for m in re.findall(r'model\.ckpt-(\d+)\.index', ' '.join(os.listdir(run))))
    assert steps[-1] in (20, 21) and set(steps) <= set(range(10, 22)) and len(steps) <= 2, steps
    assert 'eval step %d: ' % steps[-1] in output and 'test accuracy of the best checkpoint' in output
    evaluation = run_cli('evaluate', '--model_dir', run, '--checkpoint', 'latest', '--json')
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    assert json.loads(evaluation.stdout)['images'] == 269
    resumed = run_cli('train', '--model_dir', run)  # the same layout: one machine resumes it, nothing left to do
    assert resumed.returncode == 0 and 'resuming from' in resumed.stdout, resumed.stderr[-2000:]


def test_sync_cluster_ends_with_every_process_exited(tmp_path):
    run = tmp_path / 'run'
    code, output = _launch(['--ps', 2, '--workers', 2, '--grace_secs', 60, '--', *TRAIN, '--max_steps', 10,
                            '--eval_every', 10, '--sync_replicas', '--model_dir', run], timeout=180)
    assert code == 0, output[-4000:]
    assert 'parameter server(s), synchronous' in output
    # Two ps tasks: the network's variables split by size (ResNet-8's 78,042 parameters and 2 x 176 BN statistics).
    loads = re.search(r'\[chief\] variables by size on 2 ps tasks: ps0 ([\d.]+) MB \(\d+\), ps1 ([\d.]+) MB', output)
    assert loads and abs(float(loads.group(1)) - float(loads.group(2))) <= 0.02, output[-4000:]
    # Synchronous: exactly the last step, each worker released at it, nobody stopped by the launcher.
    assert '[worker0] worker0: done at step 10 ' in output and '[chief] eval step 10: ' in output
    for ps in ('ps0', 'ps1'):
        assert '[%s] %s: the chief finished the run; stopping' % (ps, ps) in output
    assert '[cluster]' not in output
    assert (run / 'model.ckpt-10.index').exists() and (run / 'best' / 'model.ckpt-10.index').exists()


def test_a_killed_worker_restarts_and_rejoins(tmp_path):
    run, logs = tmp_path / 'run', tmp_path
    spec = cluster.local_cluster(ps=1, workers=2)
    args = [sys.executable, '-m', 'resnet_graph.train', *TRAIN, '--log_every', '2', '--max_steps', '150',
            '--eval_every', '150', '--model_dir', str(run)]
    processes = []

    def start(job, name):
        log = open(logs / ('%s.log' % name), 'w')
        processes.append(subprocess.Popen(args, env=dict(ENV, TF_CONFIG=_tf_config(spec, job, 0)), stdout=log,
                                          stderr=subprocess.STDOUT))
        log.close()
        return processes[-1]

    def read(name):
        return (logs / ('%s.log' % name)).read_text()

    try:
        ps, chief, worker = start('ps', 'ps0'), start('chief', 'chief'), start('worker', 'worker0')
        deadline = time.time() + 120
        while not re.search(r'worker0: step \d+/150', read('worker0')):
            assert time.time() < deadline and worker.poll() is None, read('worker0')[-3000:]
            time.sleep(0.2)
        worker.kill()
        worker.wait()
        again = start('worker', 'worker0-restarted')
        assert chief.wait(timeout=150) == 0, read('chief')[-3000:]
        assert again.wait(timeout=30) == 0 and ps.wait(timeout=30) == 0
        restarted = read('worker0-restarted')
        joined = int(re.search(r'worker0: joined at step (\d+)', restarted).group(1))
        done = int(re.search(r'worker0: done at step (\d+)', restarted).group(1))
        assert joined > 0 and done >= 150, restarted[-3000:]  # it came back mid-run and saw the end
        assert 'did not report' not in read('chief')  # the chief counted the restarted worker's report
    finally:
        _stop(processes)


def test_a_killed_chief_restarts_and_resumes_from_its_latest_checkpoint(tmp_path):
    run = tmp_path / 'run'
    spec = cluster.local_cluster(ps=1, workers=1)
    args = [sys.executable, '-m', 'resnet_graph.train', *TRAIN, '--max_steps', '40', '--eval_every', '10',
            '--model_dir', str(run)]
    processes = []

    def start(job, name):
        with open(tmp_path / ('%s.log' % name), 'w') as log:
            processes.append(subprocess.Popen(args, env=dict(ENV, TF_CONFIG=_tf_config(spec, job, 0)), stdout=log,
                                              stderr=subprocess.STDOUT))
        return processes[-1]

    try:
        ps, chief = start('ps', 'ps0'), start('chief', 'chief')
        deadline = time.time() + 120
        while not (run / 'model.ckpt-10.index').exists():
            assert time.time() < deadline and chief.poll() is None, (tmp_path / 'chief.log').read_text()[-3000:]
            time.sleep(0.2)
        chief.kill()
        chief.wait()
        again = start('chief', 'chief-restarted')
        assert again.wait(timeout=150) == 0 and ps.wait(timeout=30) == 0
        restarted = (tmp_path / 'chief-restarted.log').read_text()
        resumed = int(re.search(r'resuming from .*model\.ckpt-(\d+) at step', restarted).group(1))
        assert 10 <= resumed < 40 and 'eval step 40: ' in restarted, restarted[-3000:]
        assert (run / 'model.ckpt-40.index').exists()
    finally:
        _stop(processes)


@pytest.mark.parametrize('tf_config,message', [
    ('{"cluster": {"ps": ["127.0.0.1:1"]', 'TF_CONFIG is not valid JSON'),
    (_tf_config({'chief': ['127.0.0.1:1'], 'ps': ['127.0.0.1:2']}, 'evaluator', 0),
     "TF_CONFIG task type 'evaluator' is unknown; valid: chief, worker, ps"),
    (_tf_config({'chief': ['127.0.0.1:1'], 'ps': ['127.0.0.1:2']}, 'ps', 1),
     "TF_CONFIG task index 1 is out of range: job 'ps' has 1 tasks (index 0..0)"),
])
def test_bad_tf_config_is_one_line_and_exit_2(tmp_path, tf_config, message):
    result = subprocess.run([sys.executable, '-m', 'resnet_graph.train', *TRAIN, '--model_dir', str(tmp_path / 'r')],
                            env=dict(ENV, TF_CONFIG=tf_config), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert 'tensorflow' not in result.stderr.lower()  # refused before TensorFlow loaded
    assert not (tmp_path / 'r').exists()


@pytest.mark.parametrize('value,message', [
    ({'cluster': {'chief': ['h:1'], 'ps': ['h:2'], 'evaluator': ['h:3']}, 'task': {'type': 'chief'}},
     'unknown job evaluator'),
    ({'cluster': {'chief': ['h:1']}, 'task': {'type': 'chief'}}, 'needs a "ps" job'),
    ({'cluster': {'chief': ['h:1'], 'ps': ['nohost']}, 'task': {'type': 'ps'}}, 'list of "host:port"'),
    ({'cluster': {'chief': ['h:1'], 'ps': ['h:2']}, 'task': {'type': 'worker', 'index': 0}},
     "task type 'worker' has no job in the cluster"),
    ({'cluster': {'chief': ['h:1'], 'ps': ['h:2']}, 'task': {'type': 'ps', 'index': -1}}, 'task index -1 is out'),
    ([1, 2], 'needs two objects, "cluster" and "task"'),
])
def test_tf_config_validation(value, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        tf_config.parse_tf_config(json.dumps(value))


def test_tf_config_roles():
    spec = tf_config.parse_tf_config(_tf_config({'worker': ['h:1', 'h:2'], 'ps': ['h:3', 'h:4']}, 'worker', 1))
    assert spec.compute_tasks == [('worker', 0), ('worker', 1)] and spec.replica_index == 1 and not spec.is_chief
    assert tf_config.Task(spec.cluster, 'worker', 0).is_chief  # without a chief job, worker 0 is the chief
    assert tf_config.parse_tf_config('  ') is None and tf_config.from_environment({}) is None


def _ps_bytes(strategy, cfg):
    """Bytes of the variables of the network ``cfg`` on each of two ps tasks when ``replica_device_setter``
    places them with ``strategy``; and the largest variable's bytes."""
    import numpy as np
    import tensorflow as tf
    from resnet_graph.nets.model import ResNet
    spec = tf.train.ClusterSpec({'ps': ['h:1', 'h:2'], 'worker': ['h:3']})
    loads = [0, 0]
    with tf.Graph().as_default():
        with tf.compat.v1.device(tf.compat.v1.train.replica_device_setter(cluster=spec, ps_strategy=strategy)):
            net = ResNet.from_config(cfg)
        for variable in net.variables:
            task = int(re.search(r'/job:ps/task:(\d)', variable.device).group(1))
            loads[task] += int(np.prod(variable.shape.as_list())) * 4
    return loads, max(int(np.prod(v.shape.as_list())) * 4 for v in net.variables)


def test_ps_strategy_by_size_balances_the_bytes_round_robin_does_not():
    import config
    from resnet_graph.training.distributed import BySize, network_sizes
    cfg = config.RunConfig.defaults(depth=18, image_size=32, channels=3, num_classes=10)
    strategy = BySize(2, network_sizes(cfg))
    by_size, largest = _ps_bytes(strategy, cfg)
    round_robin, _ = _ps_bytes(None, cfg)
    # ResNet-18 with 10 classes: 11,181,642 parameters + 2 x 4,800 BN moving statistics, float32.
    assert sum(by_size) == sum(round_robin) == (11_181_642 + 2 * 4_800) * 4
    assert strategy.loads == by_size  # the strategy's own count is what was placed
    assert abs(by_size[0] - by_size[1]) < 0.01 * sum(by_size) < abs(round_robin[0] - round_robin[1])
    unplanned = BySize(2)  # variables it was not told of: each to the lighter task as it comes
    _ps_bytes(unplanned, cfg)
    assert abs(unplanned.loads[0] - unplanned.loads[1]) <= largest


@pytest.mark.parametrize('args, message', [
    (['--workers', '0'], '--workers must be at least 1 (the chief), got 0'),
    (['--ps', '1', '--workers', '1000'], '--ps 1 --workers 1000 start 1001 TensorFlow processes on this machine'),
    (['--grace_secs', 'inf'], '--grace_secs must be a number of seconds, 0 or more, got inf'),
    (['--grace_secs', 'nan'], '--grace_secs must be a number of seconds, 0 or more, got nan'),
    (['--grace_secs', '-1'], '--grace_secs must be a number of seconds, 0 or more, got -1.0'),
])
def test_a_local_cluster_of_no_task_or_of_too_many_is_one_line(args, message, tmp_path):
    result = run_cli('cluster', *args, '--', '--model_dir', tmp_path / 'run')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    line, = error_lines(result.stderr)
    assert message in line, line
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('train_args, message', [
    (['--batch_size', '1.5'], '--batch_size=1.5 is not an integer: give a whole number; see python -m '
                              'resnet_graph.train --help'),
    (['--batch_size', '0'], '--batch_size must be at least 1, got 0'),
    (['--sync_bn', '--num_devices', '2'], '--sync_bn synchronises the towers of one machine; it is not supported in '
                                          'a TF_CONFIG cluster: drop it (--nosync_bn)'),
])
def test_a_bad_train_flag_is_one_line_before_any_task_starts(train_args, message, tmp_path):
    # each task used to print it: one line per task (3 here), each with its [task] prefix
    result = run_cli('cluster', '--ps', 1, '--workers', 2, '--', *train_args, '--model_dir', tmp_path / 'run')
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr == 'resnet_graph.cluster: error: %s\n' % message and not result.stdout
    assert not (tmp_path / 'run').exists()


def test_help_after_the_separator_is_trains_usage_once(tmp_path):
    # each task printed it: three usages, and a cluster started for nothing
    result = run_cli('cluster', '--', '--help', '--model_dir', tmp_path / 'run')
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert result.stdout.startswith('python -m resnet_graph.train') and result.stdout.count('\nflags:\n') == 1
    assert not (tmp_path / 'run').exists()
