"""Checkpoint files under faults found by attack: rotation under a reader, half-removed and temporary files, modes,
failed saves; and the command-line inputs found with them (empty or binary flag files, non-UTF-8 flag values)."""
import errno
import os
import shutil
import stat
import threading
import time

import pytest
import tensorflow as tf

from conftest import SMALL, error_lines, run_cli
from resnet_graph.errors import UsageError
from resnet_graph.serving import inference
from resnet_graph.training import checkpoints, lifecycle
from resnet_graph.training.run_dir import RunDir, new_file_mode

HEX = '0123456789abcdef' * 2


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A run directory (depth 8, 16x16 digits, 4 steps validated every 2) to copy."""
    path = tmp_path_factory.mktemp('ckfiles') / 'run'
    result = run_cli('train', *SMALL, '--max_steps', 4, '--eval_every', 2, '--model_dir', path)
    assert result.returncode == 0, result.stderr[-2000:]
    return path


@pytest.fixture
def run_copy(trained, tmp_path):
    shutil.copytree(trained, tmp_path / 'run')
    return tmp_path / 'run'


def test_best_is_found_while_a_live_trainer_replaces_it(run_copy, tmp_path):
    run = RunDir(str(run_copy), writable=False)
    best = run.best_checkpoint()
    aside = tmp_path / 'aside'
    shutil.move(run.best_dir, aside)  # between the old best going and the new one being whole
    with pytest.raises(UsageError, match='no best checkpoint'):
        inference.find_checkpoint(run, 'best')  # no trainer holds the run: at once
    lock = lifecycle._acquire(str(run_copy))
    try:
        threading.Timer(0.5, shutil.move, (str(aside), run.best_dir)).start()
        started = time.time()
        assert inference.find_checkpoint(run, 'best') == best
        assert time.time() - started >= 0.5
    finally:
        lock.close()


def test_a_checkpoint_that_vanishes_before_its_restore_is_looked_for_again(run_copy, monkeypatch):
    real_restore, calls = inference.restore, []

    def restore(session, path):
        calls.append(path)
        if len(calls) == 1:  # what Saver.restore raises when the index went meanwhile
            raise ValueError('The passed save_path is not a valid checkpoint: %s' % path)
        return real_restore(session, path)

    monkeypatch.setattr(inference, 'restore', restore)
    restored = inference.RestoredRun(str(run_copy), 'latest')
    assert len(calls) == 2 and restored.checkpoint.endswith('model.ckpt-4')


def test_old_checkpoints_go_index_first(tmp_path, monkeypatch):
    for step in (1, 2):
        for suffix in ('.data-00000-of-00001', '.index', '.meta'):
            (tmp_path / ('model.ckpt-%d%s' % (step, suffix))).write_bytes(b'x')
    removed = []
    real_remove = os.remove
    monkeypatch.setattr(os, 'remove', lambda path: removed.append(os.path.basename(path)) or real_remove(path))
    keeper = checkpoints.CheckpointKeeper(None, str(tmp_path), 1, [str(tmp_path / 'model.ckpt-1')])
    keeper._add(str(tmp_path / 'model.ckpt-2'))
    assert removed[0] == 'model.ckpt-1.index' and sorted(removed) == [
        'model.ckpt-1.data-00000-of-00001', 'model.ckpt-1.index', 'model.ckpt-1.meta']


def test_leftovers_of_killed_saves_and_removals_are_removed_at_start(run_copy):
    run = RunDir(str(run_copy))
    orphans = [run_copy / 'model.ckpt-9.data-00000-of-00001', run_copy / 'model.ckpt-9.meta',  # index removed
               run_copy / 'best' / 'model.ckpt-7.meta', run_copy / ('checkpoint.tmp' + HEX),
               run_copy / ('model.ckpt-4.meta.tmp' + HEX)]
    for path in orphans:
        path.write_bytes(b'y' * 10)
    kept = sorted(os.listdir(run_copy)) + sorted(os.listdir(run.best_dir))
    assert lifecycle.remove_orphans(run) == (5, 50)
    assert not any(p.exists() for p in orphans)
    assert sorted(os.listdir(run_copy)) + sorted(os.listdir(run.best_dir)) == [
        n for n in kept if n not in ('model.ckpt-9.data-00000-of-00001', 'model.ckpt-9.meta', 'model.ckpt-7.meta',
                                     'checkpoint.tmp' + HEX, 'model.ckpt-4.meta.tmp' + HEX)]
    assert [os.path.basename(p) for p in run.checkpoints()] == ['model.ckpt-2', 'model.ckpt-4']


def test_a_failed_save_leaves_none_of_its_files(tmp_path, monkeypatch):
    (tmp_path / 'model.ckpt-2.index').write_bytes(b'kept')

    def save(self, sess, prefix, *args, **kwargs):
        for suffix in ('.data-00000-of-00001.tempstate77', '.data-00000-of-00001'):
            with open(prefix + suffix, 'wb') as f:
                f.write(b'z' * 100)
        raise OSError(errno.ENOSPC, 'No space left on device')

    with tf.Graph().as_default():
        tf.compat.v1.get_variable('w', [4])
        keeper = checkpoints.CheckpointKeeper(tf.compat.v1.train.Saver(), str(tmp_path), 2)
        monkeypatch.setattr(tf.compat.v1.train.Saver, 'save', save)
        with pytest.raises(checkpoints.CheckpointWriteError, match='no space left on device.*needs about 16 bytes'):
            keeper.save(None, 20)
    assert sorted(os.listdir(tmp_path)) == ['model.ckpt-2.index']  # step 2's file is not step 20's


def test_copied_checkpoints_get_the_mode_of_the_files_tensorflow_writes(run_copy):
    run = RunDir(str(run_copy))
    copied = run.join('model.ckpt-4')  # steps 2 and 4: whichever improved was copied from best/
    modes = {suffix: stat.S_IMODE(os.stat(prefix + suffix).st_mode) for prefix in (run.join('model.ckpt-2'), copied)
             for suffix in ('.index', '.data-00000-of-00001', '.meta')}
    assert set(modes.values()) == {new_file_mode()}


@pytest.mark.parametrize('content, message', [
    (b'--depth=8\0\n', '--flagfile {} holds a NUL byte (byte 9): not a text file'),
    (b'--flagfile=\n', 'line in {} names no file; write --flagfile=FILE, or leave it out'),
])
def test_flag_files_that_are_binary_or_name_no_file_are_one_line(tmp_path, content, message):
    (tmp_path / 'flags').write_bytes(content)
    result = run_cli('train', '--flagfile=%s' % (tmp_path / 'flags'), '--model_dir', tmp_path / 'run')
    line, = error_lines(result.stderr)
    assert result.returncode == 2 and message.format(tmp_path / 'flags') in line, result.stderr
    assert not (tmp_path / 'run').exists()


def test_an_empty_flagfile_name_is_refused(tmp_path):
    result = run_cli('train', '--flagfile=', '--model_dir', tmp_path / 'run')
    line, = error_lines(result.stderr)
    assert result.returncode == 2 and '--flagfile names no file' in line and not (tmp_path / 'run').exists()


def test_a_flag_value_that_is_not_utf8_is_named_before_anything_runs(tmp_path):
    model_dir = os.path.join(str(tmp_path), os.fsdecode(b'm\xff'))
    result = run_cli('train', *SMALL, '--max_steps', 1, '--model_dir', model_dir)
    line, = error_lines(result.stderr)
    assert result.returncode == 2 and "--model_dir " in line and 'not UTF-8' in line, result.stderr
    assert os.listdir(tmp_path) == []


def test_evaluation_batches_shrink_to_the_memory_left(trained, monkeypatch):
    from resnet_graph.training import memory
    restored = inference.RestoredRun(str(trained), 'best')
    try:
        full = restored.evaluate('test')
        cfg = restored.config.replace(batch_size=5)
        room = memory.total(memory.estimate(cfg, cfg.channels or 3, cfg.num_classes, training=False))
        monkeypatch.setattr(memory, 'limit', lambda training=True: (room, 'a test limit of %s'))
        batches = []
        real = inference.evaluate_ids
        monkeypatch.setattr(inference, 'evaluate_ids', lambda *a, **k: batches.append(k['batch_size']) or real(*a, **k))
        small = restored.evaluate('test')
    finally:
        restored.close()
    assert batches == [5] and restored.evaluation_batch() == 5
    assert (small['accuracy'], small['images']) == (full['accuracy'], full['images'])
    assert small['loss'] == pytest.approx(full['loss'], rel=1e-5)
