"""Shared helpers: run a command line in a subprocess against this checkout."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# A ResNet-18 on 16x16 digits: the smallest ImageNet-style configuration, seconds per run.
TINY = ['--depth', '18', '--image_size', '16', '--batch_size', '32', '--log_every', '2']
# The smallest ResNet, depth 8 (CIFAR-style, 78k parameters: 1 MB checkpoints against TINY's 134 MB), for the
# tests whose subject is the run loop (signals, kills, resumes, events), not the network.
SMALL = ['--depth', '8', '--image_size', '16', '--batch_size', '32', '--log_every', '2']


# The longest test files, longest first (their summed test seconds in a --durations=0 run on the 2-core CI
# machine, 2026-12-01), started first so that the two xdist workers (whole files each, see pytest.ini) finish
# together instead of one running a long file alone at the end.
LONGEST_FIRST = ('test_hardening_more.py', 'test_hardening_run.py', 'test_import_checkpoint.py', 'test_imported_runs.py', 'test_cluster.py', 'test_hardening_input.py', 'test_slim.py', 'test_official.py', 'test_hardening_leftovers.py', 'test_reliability.py', 'test_cli.py', 'test_model.py', 'test_benchmark.py',
                 'test_towers.py', 'test_dtype.py', 'test_kill_fuzz.py', 'test_tfrecord_stream.py')


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)  # stable: the order inside a file, and of the other files, stays


def run_cli(module, *args, cwd=None, timeout=300):
    """Runs ``python -m resnet_graph.<module> args`` and returns the CompletedProcess (text mode)."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    return subprocess.run([sys.executable, '-m', 'resnet_graph.' + module] + [str(a) for a in args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr):
    """The lines of stderr that are ours (TensorFlow's import notices dropped)."""
    return [line for line in stderr.splitlines() if line.startswith('resnet_graph.')]


@pytest.fixture
def tf_graph():
    """A fresh default graph for one test."""
    import tensorflow as tf
    graph = tf.Graph()
    with graph.as_default():
        yield graph


def seeded_logits(batch, *args, seed=3, **kwargs):
    """Logits of ``ResNet(*args, **kwargs)`` on ``batch`` with graph seed ``seed``, BN in training mode.

    Two calls that differ only in an option that keeps the arithmetic (fast
    convolutions, data format) give the same weights, so equal logits.
    """
    import tensorflow as tf
    from resnet_graph.nets.model import ResNet
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        v1.set_random_seed(seed)
        model = ResNet(*args, **kwargs)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return sess.run(model.logits, {model.input_x: batch, model.is_training: True})


def ancestors(op):
    """The names of every op that graph op ``op`` waits for, through its inputs and control inputs."""
    seen, todo = set(), [op]
    while todo:
        current = todo.pop()
        for parent in [t.op for t in current.inputs] + list(current.control_inputs):
            if parent.name not in seen:
                seen.add(parent.name)
                todo.append(parent)
    return seen


def fail_checkpoint_writes(monkeypatch, step, error):
    """Makes every write of a checkpoint of ``step`` raise ``error``: a save, or the copy of best/'s files that
    stands for the rolling checkpoint of a step that improved the best."""
    import tensorflow as tf
    from resnet_graph.training import checkpoints
    real_save, real_copy = tf.compat.v1.train.Saver.save, checkpoints._copy
    name = 'model.ckpt-%d' % step

    def save(self, sess, prefix, *args, **kwargs):
        if os.path.basename(prefix) == name:
            raise error
        return real_save(self, sess, prefix, *args, **kwargs)

    def copy(source, target):
        if os.path.basename(target).startswith(name + '.'):
            raise error
        return real_copy(source, target)

    monkeypatch.setattr(tf.compat.v1.train.Saver, 'save', save)
    monkeypatch.setattr(checkpoints, '_copy', copy)
