"""Issue 20, the run directory: one writer, checkpoints that really load, records checked, read-only commands."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from conftest import ROOT, fail_checkpoint_writes, SMALL, error_lines, run_cli
from resnet_graph.training import trainer as trainer_module
from test_kill_fuzz import eval_accuracy_by_step
from test_trainer import tiny_config

ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
RUN = SMALL + ['--max_steps', '4', '--eval_every', '2']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A finished SMALL run: rolling checkpoints at steps 2 and 4, best/ and best.json."""
    model_dir = tmp_path_factory.mktemp('trained') / 'run'
    result = run_cli('train', *RUN, '--model_dir', model_dir)
    assert result.returncode == 0, result.stderr
    return model_dir


@pytest.fixture
def run_copy(trained, tmp_path):
    """A fresh copy of the trained run for one test to damage."""
    path = tmp_path / 'run'
    shutil.copytree(trained, path)
    return path


def warning_lines(stderr, command='train'):
    """Our warnings on ``stderr``, each one line '<command>: warning: ...', without that prefix."""
    prefix = 'resnet_graph.%s: warning: ' % command
    return [line[len(prefix):] for line in stderr.splitlines() if line.startswith(prefix)]


def loads(prefix):
    """Whether every tensor of checkpoint ``prefix`` reads."""
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:  # OpError, ValueError, or IndexError for a data file cut short
        return False
    return True


def good_checkpoints(model_dir):
    return sorted(p[:-len('.index')] for p in glob.glob(os.path.join(str(model_dir), '**', 'model.ckpt-*.index'),
                                                       recursive=True) if loads(p[:-len('.index')]))


def truncate(path, size=None):
    size = os.path.getsize(path) // 2 if size is None else size
    with open(path, 'r+b') as f:
        f.truncate(size)


def snapshot(model_dir):
    """{relative path: (size, mtime_ns, bytes)} of every file under ``model_dir``."""
    files = {}
    for root, _, names in os.walk(str(model_dir)):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                files[os.path.relpath(path, str(model_dir))] = (os.stat(path).st_mtime_ns, f.read())
    return files


def one_error_line(result):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert 'Traceback' not in result.stderr, result.stderr
    line, = error_lines(result.stderr)
    return line


# -- 1: one writer per run directory ------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_trainer_on_the_same_directory_exits_2_naming_the_holder(tmp_path):
    model_dir = tmp_path / 'run'
    first = subprocess.Popen([sys.executable, '-m', 'resnet_graph.train'] + SMALL +
                             ['--max_steps', '100000', '--eval_every', '100000', '--model_dir', str(model_dir)],
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in first.stdout:
            if line.startswith('step '):
                break
        second = run_cli('train', *SMALL, '--seed', 1, '--max_steps', 4, '--model_dir', model_dir)
        line = one_error_line(second)
        assert str(model_dir) in line and 'pid %d' % first.pid in line and os.uname().nodename in line, line
        assert first.poll() is None  # the holder trains on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # kill -9 released the lock; the run directory holds no checkpoint yet, so its config is provisional
    third = run_cli('train', *SMALL, '--image_size', 8, '--max_steps', 2, '--eval_every', 2, '--model_dir', model_dir)
    assert third.returncode == 0, third.stderr


# -- 2: the newest checkpoint that really loads --------------------------------------------------------------

@pytest.mark.slow
def test_a_truncated_data_file_is_skipped_by_every_command(run_copy, tmp_path):
    damaged = run_copy / 'model.ckpt-4'
    truncate(str(damaged) + '.data-00000-of-00001')
    result = run_cli('evaluate', '--model_dir', run_copy, '--checkpoint', 'latest')
    assert result.returncode == 0, result.stderr
    assert 'model.ckpt-2' in result.stdout and str(damaged) in result.stderr
    warning, = warning_lines(result.stderr, 'evaluate')
    assert warning.startswith('skipping checkpoint %s: its index or data file is cut short' % damaged), warning
    exported = run_cli('export', '--model_dir', run_copy, '--checkpoint', 'latest', '--format', 'frozen_graph',
                       '--out', tmp_path / 'frozen.pb')
    assert exported.returncode == 0 and 'model.ckpt-2' in exported.stdout, exported.stderr
    named = run_cli('evaluate', '--model_dir', run_copy, '--checkpoint', damaged)
    assert str(damaged) in one_error_line(named)
    warm = run_cli('train', *RUN, '--model_dir', tmp_path / 'warm', '--warm_start_from', damaged)
    assert str(damaged) in one_error_line(warm) and not os.path.exists(tmp_path / 'warm')
    resumed = run_cli('train', '--model_dir', run_copy, '--max_steps', 6)
    assert resumed.returncode == 0, resumed.stderr
    assert [line for line in warning_lines(resumed.stderr) if line.startswith('skipping checkpoint %s:' % damaged)]
    assert 'skipping' not in resumed.stdout
    assert loads(run_copy / 'model.ckpt-6') and loads(run_copy / 'model.ckpt-2')


@pytest.mark.slow
@pytest.mark.parametrize('damage', ['truncate', 'remove'])
def test_a_damaged_or_missing_best_checkpoint_rebuilds_the_best_record(run_copy, damage):
    if damage == 'remove':
        shutil.rmtree(run_copy / 'best')
    else:
        for path in glob.glob(str(run_copy / 'best' / 'model.ckpt-*.data-*')):
            truncate(path)
    result = run_cli('train', '--model_dir', run_copy, '--max_steps', 6)
    assert result.returncode == 0, result.stderr
    assert any('rebuilding the best record' in line for line in warning_lines(result.stderr)), result.stderr
    assert 'rebuilding' not in result.stdout
    best = json.loads((run_copy / 'best.json').read_text())
    assert loads(run_copy / 'best' / ('model.ckpt-%d' % best['step']))
    assert run_cli('evaluate', '--model_dir', run_copy).returncode == 0


# -- 3: every rolling checkpoint deleted, best/ intact ------------------------------------------------------------

@pytest.mark.slow
def test_without_rolling_checkpoints_training_continues_from_best_and_says_so(run_copy):
    for path in glob.glob(str(run_copy / 'model.ckpt-*')) + [str(run_copy / 'checkpoint')]:
        os.remove(path)
    best = json.loads((run_copy / 'best.json').read_text())
    result = run_cli('train', '--model_dir', run_copy, '--max_steps', 6)
    assert result.returncode == 0, result.stderr
    line, = [line for line in warning_lines(result.stderr) if 'no rolling checkpoint' in line]
    assert 'continuing from the best checkpoint' in line and 'no rolling checkpoint' not in result.stdout
    assert 'resuming from %s at step %d' % (run_copy / 'best' / ('model.ckpt-%d' % best['step']), best['step']) \
        in result.stdout


@pytest.mark.slow
def test_a_kill_right_after_the_first_best_save_loses_no_validation_point(tmp_path):
    # kill -9 the moment best.json of step 2 is written, before any rolling checkpoint: the resume continues
    # from best/ at step 2, so step 2's validation must already be in the event files (the kill fuzz found it)
    model_dir = tmp_path / 'run'
    killed = subprocess.run([sys.executable, '-c', (
        'import os, sys\n'
        'from resnet_graph.training.run_dir import RunDir\n'
        'save = RunDir.save_best\n'
        'RunDir.save_best = lambda self, record: (save(self, record), os._exit(9))\n'
        'from resnet_graph import train\n'
        'sys.argv = ["train"] + sys.argv[1:]\n'
        'train.cli_main()\n')] + SMALL + ['--max_steps', '4', '--eval_every', '2', '--model_dir', str(model_dir)],
        env=ENV, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9 and not glob.glob(str(model_dir / 'model.ckpt-*')), killed.stderr
    resumed = run_cli('train', '--model_dir', model_dir)
    assert resumed.returncode == 0 and 'at step 2' in resumed.stdout, resumed.stderr
    assert sorted(eval_accuracy_by_step(str(model_dir))) == [2, 4]


# -- 4: a failed first start does not claim the directory ----------------------------------------------------------

@pytest.mark.slow
def test_a_start_killed_before_its_first_checkpoint_does_not_block_another_configuration(tmp_path):
    model_dir = tmp_path / 'run'
    proc = subprocess.Popen([sys.executable, '-m', 'resnet_graph.train'] + SMALL +
                            ['--max_steps', '100000', '--eval_every', '100000', '--model_dir', str(model_dir)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith('step '):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (model_dir / 'config.json').exists()
    corrected = run_cli('train', *SMALL, '--image_size', 8, '--max_steps', 2, '--eval_every', 2,
                        '--model_dir', model_dir)
    assert corrected.returncode == 0, corrected.stderr
    assert json.loads((model_dir / 'config.json').read_text())['image_size'] == 8


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_first_start_builds_its_graph_is_one_line_and_leaves_no_directory(tmp_path, signum):
    # the signal arrives once the lock is held, before the loop's own handler: the start is undone like a failure
    model_dir = tmp_path / 'run'
    stopped = subprocess.run([sys.executable, '-c', (
        'import os, sys\n'
        'from resnet_graph.training.trainer import Trainer\n'
        'build = Trainer._build\n'
        'Trainer._build = lambda self, start: (os.kill(os.getpid(), %d), build(self, start))[1]\n'
        'from resnet_graph import train\n'
        'sys.argv = ["train"] + sys.argv[1:]\n'
        'train.cli_main()\n' % signum)] + SMALL + ['--max_steps', '4', '--model_dir', str(model_dir)],
        env=ENV, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 128 + signum, stopped.stderr
    assert error_lines(stderr=stopped.stderr) == [
        'resnet_graph.train: interrupted' if signum == signal.SIGINT else
        'resnet_graph.train: stopped by SIGTERM before it finished; nothing is lost: run the same command again']
    assert not model_dir.exists()


@pytest.mark.slow
def test_a_bad_warm_start_leaves_no_directory_behind(tmp_path):
    result = run_cli('train', *RUN, '--model_dir', tmp_path / 'run', '--warm_start_from', tmp_path / 'nothing')
    one_error_line(result)
    assert os.listdir(tmp_path) == []


# -- 5: orphaned temporary files, a full disk ---------------------------------------------------------------------

@pytest.mark.slow
def test_orphaned_tempstate_files_are_removed_at_start(run_copy):
    orphans = [run_copy / 'model.ckpt-8.data-00000-of-00001.tempstate123', run_copy / 'model.ckpt-8.index.tempstate9',
               run_copy / 'best' / 'model.ckpt-8.index.tempstate5', run_copy / '.tmp-abc']
    for path in orphans:
        path.write_bytes(b'x' * 1000)
    result = run_cli('train', '--model_dir', run_copy, '--max_steps', 6)
    assert result.returncode == 0, result.stderr
    assert not any(p.exists() for p in orphans)
    assert any(line.startswith('removed 4 temporary files') for line in warning_lines(result.stderr)), result.stderr


def test_a_full_disk_names_the_path_and_the_bytes_needed(tmp_path, monkeypatch):
    trainer = trainer_module.Trainer(tiny_config(tmp_path, max_steps=4, eval_every=2), log=lambda line: None)
    fail_checkpoint_writes(monkeypatch, 4, tf.errors.ResourceExhaustedError(
        None, None, 'Graph execution error:\n\nDetected at node save/SaveV2\n%s-4.data-00000-of-00001.tempstate77; '
        'No space left on device' % trainer.run.checkpoint_prefix))
    with pytest.raises(trainer_module.TrainingError) as raised:
        trainer.train()
    message = str(raised.value)
    assert 'no space left on device' in message and str(tmp_path) in message and 'bytes' in message, message
    assert 'Graph execution error' not in message


# -- 7: damaged records ----------------------------------------------------------------------------------------

CONFIGS = [('not json {', 'config.json'), ('[1, 2]', 'config.json'), ('null', 'config.json'), ('{}', 'depth'),
           ({'depth': 19}, 'depth'), ({'depth': '8'}, 'depth'), ({'batch_size': 0}, 'batch_size'),
           ({'conv': 'nope'}, 'conv'), ({'dtype': 'int8'}, 'dtype')]


@pytest.mark.slow
@pytest.mark.parametrize('content, field', CONFIGS)
def test_a_damaged_config_is_one_line_naming_the_file_and_the_field(run_copy, content, field):
    path = run_copy / 'config.json'
    if isinstance(content, dict):
        content = json.dumps(dict(json.loads(path.read_text()), **content))
    path.write_text(content)
    for result in (run_cli('train', '--model_dir', run_copy, '--max_steps', 6),
                   run_cli('evaluate', '--model_dir', run_copy)):
        line = one_error_line(result)
        assert str(path) in line and field in line and '--' + field not in line, line
    assert len(good_checkpoints(run_copy)) == 3


def test_a_config_without_its_depth_is_refused_and_left_as_it_was(run_copy):
    # A default in place of a recorded architecture field would build, and write back, another network.
    path = run_copy / 'config.json'
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in saved.items() if k != 'depth'}))
    before = path.read_text()
    for result in (run_cli('train', '--model_dir', run_copy, '--max_steps', 6),
                   run_cli('evaluate', '--model_dir', run_copy)):
        line = one_error_line(result)
        assert str(path) in line and 'lacks depth' in line, line
    assert path.read_text() == before and len(good_checkpoints(run_copy)) == 3


@pytest.mark.slow
def test_a_run_saved_before_channels_was_recorded_is_read_with_its_data_sets_channels(run_copy):
    path = run_copy / 'config.json'
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != 'channels'}))
    result = run_cli('evaluate', '--model_dir', run_copy)
    assert result.returncode == 0 and 'top-1' in result.stdout, result.stderr


@pytest.mark.slow
def test_a_saved_image_size_too_large_for_the_machine_is_one_line_in_the_read_only_commands(run_copy):
    path = run_copy / 'config.json'
    path.write_text(json.dumps(dict(json.loads(path.read_text()), image_size=100000)))
    line = one_error_line(run_cli('evaluate', '--model_dir', run_copy))
    assert line.startswith('resnet_graph.evaluate: error: %s describes a network that cannot run here' % path), line


@pytest.mark.slow
def test_a_run_without_best_points_the_read_only_commands_to_its_latest_checkpoint(run_copy):
    shutil.rmtree(str(run_copy / 'best'))
    line = one_error_line(run_cli('evaluate', '--model_dir', run_copy))
    assert line.endswith('no best checkpoint in %s; use --checkpoint latest (%s), or resume training to rebuild '
                         'best/' % (run_copy, run_copy / 'model.ckpt-4')), line
    assert run_cli('evaluate', '--model_dir', run_copy, '--checkpoint', 'latest').returncode == 0


@pytest.mark.slow
def test_a_copied_run_resumes_from_a_relative_model_dir(run_copy, tmp_path):
    # Its checkpoint state file names the original directory: the repaired one must name the copy's files.
    result = run_cli('train', '--model_dir', 'run', '--max_steps', 6, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert 'resuming from run/model.ckpt-4 at step 4' in result.stdout, result.stdout
    assert os.path.exists(str(run_copy / 'model.ckpt-6.index'))


BESTS = [('[]', 'best.json'), ({'validation_accuracy': 2.0}, 'validation_accuracy'), ({'step': 999}, 'step')]


@pytest.mark.slow
@pytest.mark.parametrize('content, field', BESTS)
def test_a_damaged_best_record_is_named_and_rebuilt(run_copy, content, field):
    path = run_copy / 'best.json'
    if isinstance(content, dict):
        content = json.dumps(dict(json.loads(path.read_text()), **content))
    path.write_text(content)
    result = run_cli('train', '--model_dir', run_copy, '--max_steps', 6)
    assert result.returncode == 0, result.stderr
    line, = [line for line in warning_lines(result.stderr) if str(path) in line]
    assert field in line and 'rebuilding the best record' in line, line
    assert str(path) not in result.stdout
    best = json.loads(path.read_text())
    assert 0 <= best['validation_accuracy'] <= 1 and loads(run_copy / 'best' / ('model.ckpt-%d' % best['step']))


# -- 8: read-only commands ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_read_only_commands_never_write_into_the_run_directory(run_copy, tmp_path):
    for path in glob.glob(str(run_copy / 'model.ckpt-4.*')):
        os.remove(path)  # the state file names a missing checkpoint: today's evaluate rewrites it
    before = snapshot(run_copy)
    image = tmp_path / 'x.npy'
    import numpy as np
    np.save(str(image), np.zeros((16, 16), np.uint8))
    for module, args in (('evaluate', ['--checkpoint', 'latest']), ('evaluate', []),
                         ('predict', ['--checkpoint', 'latest', image]),
                         ('export', ['--checkpoint', 'latest', '--format', 'frozen_graph', '--out', tmp_path / 'f.pb']),
                         ('plot', ['--out', tmp_path / 'c.png']), ('summary', [])):
        result = run_cli(module, '--model_dir', run_copy, *args)
        assert result.returncode == 0, (module, result.stderr)
        assert snapshot(run_copy) == before, module
    warm = run_cli('train', *RUN, '--model_dir', tmp_path / 'warm', '--warm_start_from', run_copy)
    assert warm.returncode == 0, warm.stderr
    assert snapshot(run_copy) == before


def test_restoring_retries_when_the_best_checkpoint_rotates_away(run_copy, monkeypatch):
    from resnet_graph.serving import inference
    real_restore, calls = inference.restore, []

    def restore(session, checkpoint):
        calls.append(checkpoint)
        if len(calls) == 1:  # training replaced best/ between finding the checkpoint and reading it
            raise tf.errors.NotFoundError(None, None, '%s.data-00000-of-00001 not found' % checkpoint)
        return real_restore(session, checkpoint)

    monkeypatch.setattr(inference, 'restore', restore)
    restored = inference.RestoredRun(str(run_copy), 'best')
    assert len(calls) == 2 and restored.checkpoint == calls[-1]
    restored.close()


def test_restoring_a_live_run_retries_for_as_long_as_its_checkpoints_keep_rotating(run_copy, monkeypatch):
    # a trainer saving every few tenths of a second with --max_to_keep 1 beat five retries (attack: 3 of 5 failed)
    from resnet_graph.serving import inference
    from resnet_graph.training import lifecycle
    real_restore, calls = inference.restore, []

    def restore(session, checkpoint):
        calls.append(checkpoint)
        if len(calls) <= 12:
            raise tf.errors.NotFoundError(None, None, '%s.data-00000-of-00001 not found' % checkpoint)
        return real_restore(session, checkpoint)

    monkeypatch.setattr(inference, 'restore', restore)
    lock = lifecycle._acquire(str(run_copy))  # the live trainer
    try:
        restored = inference.RestoredRun(str(run_copy), 'latest')
    finally:
        lock.close()
    assert len(calls) == 13 and restored.checkpoint == calls[-1]
    restored.close()
    calls.clear()  # a run nobody holds is not rotating: a checkpoint that vanishes there is an error soon
    with pytest.raises(trainer_module.UsageError, match='disappeared or changed while it was read'):
        inference.RestoredRun(str(run_copy), 'latest')
    assert len(calls) == inference.ROTATION_TRIES + 1


# -- fault injection: each file of a run damaged in turn -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize('target', ['model.ckpt-4.index', 'model.ckpt-4.data-00000-of-00001', 'checkpoint',
                                    'config.json', 'best.json'])
def test_each_file_truncated_in_turn(run_copy, target):
    truncate(str(run_copy / target))
    good = [p for p in good_checkpoints(run_copy)]
    results = [run_cli('train', '--model_dir', run_copy, '--max_steps', 6),
               run_cli('evaluate', '--model_dir', run_copy, '--checkpoint', 'latest')]
    for result in results:
        assert 'Traceback' not in result.stderr, result.stderr
        if result.returncode != 0:
            one_error_line(result)
            assert target == 'config.json' and 'config.json' in result.stderr
    assert results[0].returncode == 0 or target == 'config.json'
    assert all(loads(p) for p in good if '/best/' not in p), good  # no good rolling checkpoint deleted


@pytest.mark.slow
def test_a_damaged_best_record_keeps_the_best_checkpoint_that_loads(run_copy):
    # best/ holds step 2 (older than the newest rolling checkpoint, 4): a damaged best.json must not replace it.
    best_dir = run_copy / 'best'
    shutil.rmtree(str(best_dir))
    best_dir.mkdir()
    for path in glob.glob(str(run_copy / 'model.ckpt-2.*')):
        shutil.copy(path, str(best_dir))
    tf.compat.v1.train.update_checkpoint_state(str(best_dir), str(best_dir / 'model.ckpt-2'))
    (run_copy / 'best.json').write_text('{"step": ')
    result = run_cli('train', '--model_dir', run_copy, '--max_steps', 4)
    assert result.returncode == 0, result.stderr
    assert 'warning: best record rebuilt from %s' % (best_dir / 'model.ckpt-2') in result.stderr, result.stderr
    best = json.loads((run_copy / 'best.json').read_text())
    assert best['step'] == 2 and best['checkpoint'] == str(best_dir / 'model.ckpt-2')
    assert loads(best_dir / 'model.ckpt-2') and 'best validation accuracy %.4f at step 2' % best[
        'validation_accuracy'] in result.stdout
