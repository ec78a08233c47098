"""No lost run: kills, double signals, NaN losses, full disks, stale state files, foreign checkpoints, bad flags."""
import errno
import glob
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, fail_checkpoint_writes, error_lines, run_cli
from resnet_graph.training import trainer as trainer_module
from resnet_graph.data.pipeline import EpochOrder
from resnet_graph.nets.model import ResNet
from resnet_graph.training.run_dir import RunDir
from test_trainer import tiny_config

pytestmark = pytest.mark.slow  # training runs killed and resumed, dozens of command lines

# The depth-8 ResNet on 8x8 digits: start-up dominates, so kills land at every phase of the loop.
FAST = ['--depth', '8', '--image_size', '8', '--batch_size', '16', '--log_every', '1']
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')


def start_training(model_dir, *args):
    return subprocess.Popen([sys.executable, '-m', 'resnet_graph.train'] + FAST + ['--model_dir', str(model_dir)] +
                            [str(a) for a in args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)


def wait_for(proc, prefix):
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError('the run ended before printing %r' % prefix)


def test_a_second_signal_exits_at_once_and_the_run_still_resumes(tmp_path):
    model_dir = tmp_path / 'run'
    proc = start_training(model_dir, '--max_steps', 400, '--eval_every', 50)
    wait_for(proc, 'step 3/')
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) in (0, 128 + signal.SIGTERM)
    proc.stdout.close()
    result = run_cli('train', '--model_dir', model_dir, '--max_steps', 12)
    assert result.returncode == 0, result.stderr
    assert RunDir(str(model_dir)).latest_checkpoint().endswith('model.ckpt-12')


def _poison(trainer, at_step):
    """Makes the training batch of step ``at_step`` (1-based) all NaN."""
    fetch = trainer.loader.source.fetch
    target = EpochOrder(trainer.loader.train_ids, trainer.cfg.batch_size, trainer.cfg.seed).batch_ids(at_step - 1)

    def poisoned(ids):
        images, labels = fetch(ids)
        if np.array_equal(ids, target):
            images = np.full_like(images, np.nan)
        return images, labels

    trainer.loader.source.fetch = poisoned


def test_nan_loss_stops_and_names_the_step_and_the_last_good_checkpoint(tmp_path):
    trainer = trainer_module.Trainer(tiny_config(tmp_path, max_steps=8, eval_every=2), log=lambda line: None)
    _poison(trainer, 5)
    with pytest.raises(trainer_module.TrainingError, match=r'loss became nan at step 5.*model.ckpt-4'):
        trainer.train()
    run = RunDir(str(tmp_path))
    assert run.latest_checkpoint().endswith('model.ckpt-4') and run.load_best()['step'] <= 4
    assert np.isfinite(tf.train.load_checkpoint(run.latest_checkpoint()).get_tensor('stem/conv/kernel')).all()


def test_nan_policy_skip_skips_the_update_and_never_keeps_nan_weights(tmp_path):
    lines = []
    trainer = trainer_module.Trainer(tiny_config(tmp_path, max_steps=8, eval_every=4, nan_policy='skip'),
                                     log=lines.append)
    _poison(trainer, 3)
    result = trainer.train()
    assert result['step'] == 8 and trainer.skipped == 1
    assert any(line.startswith('step 3: loss nan, update skipped') for line in lines)
    reader = tf.train.load_checkpoint(RunDir(str(tmp_path)).best_checkpoint())
    for name in reader.get_variable_to_shape_map():
        assert np.isfinite(reader.get_tensor(name)).all(), name
    assert np.isfinite(result['best']['validation_loss'])


@pytest.mark.parametrize('error', [OSError(errno.ENOSPC, 'No space left on device'),
                                   tf.errors.PermissionDeniedError(None, None, 'read-only file system')])
def test_a_failed_save_keeps_the_earlier_checkpoints_and_says_why(error, tmp_path, monkeypatch):
    trainer = trainer_module.Trainer(tiny_config(tmp_path, max_steps=6, eval_every=2), log=lambda line: None)
    fail_checkpoint_writes(monkeypatch, 4, error)
    with pytest.raises(trainer_module.TrainingError, match='cannot write a checkpoint at step 4.*earlier checkpoints'
                                                          ' are intact'):
        trainer.train()
    run = RunDir(str(tmp_path))
    assert run.latest_checkpoint().endswith('model.ckpt-2')
    assert tf.train.load_checkpoint(run.latest_checkpoint()).get_tensor('global_step') == 2


def test_stale_or_broken_state_files_are_repaired(tmp_path):
    result = run_cli('train', *FAST, '--model_dir', tmp_path / 'run', '--max_steps', 6, '--eval_every', 2)
    assert result.returncode == 0, result.stderr
    run = RunDir(str(tmp_path / 'run'))
    for path in glob.glob(run.join('model.ckpt-6.*')):
        os.remove(path)  # the state file still names step 6
    with open(run.join('model.ckpt-4.index'), 'r+b') as f:
        f.truncate(10)  # and step 4 is cut short
    assert run.latest_checkpoint().endswith('model.ckpt-2')
    assert tf.train.get_checkpoint_state(run.path).model_checkpoint_path.endswith('model.ckpt-2')
    with open(run.join('checkpoint'), 'w') as f:
        f.write('garbage {{{')
    resumed = run_cli('train', '--model_dir', run.path)
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming from %s at step 2' % run.join('model.ckpt-2') in resumed.stdout
    assert run.latest_checkpoint().endswith('model.ckpt-6')


def test_a_checkpoint_of_another_architecture_lists_the_mismatched_variables(tmp_path):
    result = run_cli('train', *FAST, '--depth', 18, '--model_dir', tmp_path / '18', '--max_steps', 2, '--eval_every', 2)
    assert result.returncode == 0, result.stderr
    foreign = str(tmp_path / 'resnet50.ckpt')
    with tf.Graph().as_default():
        ResNet(50, 10, 8, 8, 1)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver().save(sess, foreign)
    result = run_cli('evaluate', '--model_dir', tmp_path / '18', '--checkpoint', foreign)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    line, = error_lines(result.stderr)
    assert 'does not fit this network' in line and 'variables differ' in line
    assert 'stage1/block0/conv2/kernel is [3, 3, 64, 64], the network has [3, 3, 64, 64]' not in line
    assert 'stem/conv/kernel' not in line and 'stage1/block0/conv1/kernel is [1, 1, 64, 64], the network has [3, 3, ' \
        '64, 64]' in line


BAD_FLAGS = [
    ['--depth', '0'], ['--depth', '-50'], ['--depth', '50.5'], ['--depth', ''], ['--batch_size', '-1'],
    ['--batch_size', 'many'], ['--epochs', '0'], ['--max_steps', '-3'], ['--learning_rate', '0'],
    ['--learning_rate', 'nan'], ['--learning_rate', 'fast'], ['--learning_decay_rate', '0'],
    ['--learning_decay_rate', '1.5'], ['--learning_decay_steps', '0'], ['--weight_decay', '-0.1'],
    ['--bn_momentum', '1'], ['--bn_momentum', '-0.5'], ['--eval_every', '-1'], ['--log_every', '0'],
    ['--max_to_keep', '0'], ['--image_size', '4'], ['--image_size', '1e3'], ['--seed', '-2'],
    ['--nan_policy', 'ignore'], ['--histogram_every', '-1'], ['--trace_step', '-7'], ['--dataset', '../etc'],
    ['--depth'], ['--unknown_flag', '1'], ['positional_argument'], ['--model_dir', 'x', '--model_dir'],
    ['--validation_fraction', '1'], ['--channels', '2'], ['--augment', 'mixup'], ['--dataset', 'mnist'],
    ['--dataset', 'folder', '--download'],
]


def test_flag_fuzz_every_bad_value_gets_exit_2_one_line_and_no_files(tmp_path):
    rng = random.Random(1)
    cases = [[c] for c in BAD_FLAGS] + [rng.sample(BAD_FLAGS, 2) for _ in range(5)]
    for case in cases:
        args = [a for flag in case for a in flag]
        result = run_cli('train', '--model_dir', tmp_path / 'run', *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert 'Traceback' not in result.stderr, args
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert os.listdir(tmp_path) == [], args
    other_commands = (
        ('evaluate', ['--split', 'dev']), ('evaluate', ['--model_dir', tmp_path / 'none']),
        ('predict', ['--top_k', '0', '--model_dir', 'x', 'f.png']), ('predict', ['--json=maybe']),
        ('export', ['--format', 'onnx']), ('export', ['--model_dir', 'none', '--format', 'saved_model', '--out', 'm']),
        ('plot', ['--model_dir', 'none']), ('summary', ['--depth', '21']), ('summary', ['--width_multiplier', '0']),
        ('import_keras', ['--model', 'resnet18']), ('import_keras', ['--model', 'resnet50', '--weights', 'imagenet',
                                                                     '--model_dir', 'r']),
        ('benchmark', ['--batch_size', '0']), ('benchmark', ['--mode', 'serve']))
    for module, args in other_commands:
        result = run_cli(module, *args, cwd=tmp_path)
        assert result.returncode == 2 and len(error_lines(result.stderr)) == 1, (module, args, result.stderr)
        assert os.listdir(tmp_path) == []


def test_an_unwritable_model_dir_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a directory')
    result = run_cli('train', *FAST, '--model_dir', blocker / 'run', '--max_steps', 2)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    line, = error_lines(result.stderr)
    assert 'cannot write the run directory %s' % (blocker / 'run') in line
    assert sorted(os.listdir(tmp_path)) == ['a_file'] and blocker.read_text() == 'not a directory'
