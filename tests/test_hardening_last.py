"""Issue 20, the last attack: memory under ulimit -v, event files that cannot be written, JPEGs cut short,
warnings on stderr, indented flag file lines, --helpfull, the wording of flag errors."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SMALL, error_lines, run_cli

ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')


def only_line(result):
    """The one stderr line of a command that exited 2 (nothing else on stderr)."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert len(result.stderr.splitlines()) == 1, result.stderr
    line, = error_lines(result.stderr)
    return line


# ---- 5: indented flag file lines ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_indented_flag_file_lines_are_read_like_the_others(tmp_path):
    other = tmp_path / 'other.flags'
    other.write_text('\t--image_size=32\n')
    main = tmp_path / 'main.flags'
    main.write_text('  # an indented comment\n  --depth=18\n   --flagfile=%s\n' % other)
    result = run_cli('summary', '--flagfile', main, '--json', timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"depth": 18' in result.stdout and '"image_size": 32' in result.stdout and not result.stderr


@pytest.mark.parametrize('kind', ['missing', 'circular'])
def test_an_indented_nested_flagfile_gets_the_chain_checks(tmp_path, kind):
    main, missing = tmp_path / 'main.flags', tmp_path / 'missing.flags'
    main.write_text('--depth=8\n    --flagfile=%s\n' % (missing if kind == 'missing' else main))
    result = run_cli('train', '--flagfile=%s' % main, '--model_dir', tmp_path / 'run', timeout=120)
    assert only_line(result) == 'resnet_graph.train: error: ' + (
        'cannot read --flagfile %s: No such file or directory; give a text file of --flag=value lines' % missing
        if kind == 'missing' else
        '--flagfile %s includes itself (%s -> %s); remove the circular --flagfile line' % (main, main, main))
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('line,message', [
    ('--depth 18', "the line '--depth 18' is not --flag=value; write --depth=18"),
    ('  --flagfile other.flags', "the line '--flagfile other.flags' is not --flag=value; write --flagfile=other.flags"),
    ('--flagfile', "the line '--flagfile' names no file; write --flagfile=FILE")])
def test_a_flag_file_line_that_is_not_flag_equals_value_is_named(tmp_path, line, message):
    main = tmp_path / 'main.flags'
    main.write_text(line + '\n')
    result = run_cli('summary', '--flagfile', main, timeout=120)
    assert only_line(result) == 'resnet_graph.summary: error: --flagfile %s: %s' % (main, message)


# ---- 6: --helpfull -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('command', ['train', 'plot'])
def test_helpfull_lists_absl_flags_by_module_and_help_stays_short(command):
    full, short = run_cli(command, '--helpfull', timeout=60), run_cli(command, '--help', timeout=60)
    assert full.returncode == short.returncode == 0 and not full.stderr and not short.stderr
    names = lambda text: re.findall(r'^  --(?:\[no\])?(\w+):', text, re.M)  # noqa: E731
    assert 'resnet_graph.flags:' in full.stdout.splitlines() and 'absl.flags:' in full.stdout.splitlines()
    after_absl = full.stdout.split('\nabsl.flags:\n')[1]
    assert names(after_absl) == ['flagfile', 'undefok']
    assert set(names(full.stdout)) == set(names(short.stdout)) | {'flagfile', 'undefok'}
    assert 'flagfile' not in names(short.stdout) and 'undefok' not in names(short.stdout)


def test_undefok_that_helpfull_lists_works():
    result = run_cli('summary', '--undefok=later_flag', '--later_flag=1', '--depth', '18', '--json', timeout=60)
    assert result.returncode == 0, result.stderr


# ---- 7: wordings ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('command,args', [
    ('train', []), ('plot', []), ('evaluate', []), ('predict', ['x.png']),
    ('export', ['--format', 'saved_model', '--out', 'm']),
    ('import_keras', ['--model', 'resnet50', '--weights', 'w.h5']),
    ('import_checkpoint', ['--variant', 'slim_v1', '--checkpoint', 'c']), ('summary', [])])
def test_an_empty_model_dir_is_the_same_refusal_on_every_command(tmp_path, command, args):
    result = run_cli(command, '--model_dir=', *args, cwd=tmp_path, timeout=120)
    assert only_line(result).startswith("resnet_graph.%s: error: --model_dir '' names no directory; give " % command)
    assert os.listdir(tmp_path) == []


def test_a_blank_warm_start_names_no_checkpoint(tmp_path):
    result = run_cli('train', '--warm_start_from= ', '--model_dir', tmp_path / 'run', timeout=120)
    assert only_line(result) == ("resnet_graph.train: error: --warm_start_from ' ' names no run directory or "
                                 "checkpoint; give one, or leave the flag out")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('command,flag,value,message', [
    ('train', 'batch_size', '1.5', '--batch_size=1.5 is not an integer: give a whole number'),
    ('train', 'depth', 'abc', '--depth=abc is not an integer: give a whole number'),
    ('summary', 'image_size', '2e2', '--image_size=2e2 is not an integer: give a whole number'),
    ('train', 'learning_rate', 'fast', '--learning_rate=fast is not a number'),
    ('predict', 'json', 'maybe', '--json=maybe is not true or false: give --json or --nojson'),
    ('evaluate', 'batch_size', '8', "Unknown command line flag 'batch_size'"),
])
def test_a_bad_flag_value_is_one_line_naming_the_flag_and_the_command_help(tmp_path, command, flag, value, message):
    result = run_cli(command, '--%s=%s' % (flag, value), cwd=tmp_path, timeout=120)
    assert only_line(result) == 'resnet_graph.%s: error: %s; see python -m resnet_graph.%s --help' % (
        command, message, command)
    assert os.listdir(tmp_path) == []


# ---- 1: memory under ulimit -v -------------------------------------------------------------------------------------

def run_limited(kib, *args, cwd=None):
    """python -m resnet_graph.<args> under ``ulimit -v kib``."""
    script = 'ulimit -v %d; exec "$0" -m resnet_graph.%s' % (kib, ' '.join("'%s'" % a for a in args))
    return subprocess.run(['bash', '-c', script, sys.executable], env=ENV, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize('kib,advice', [(4500000, r'lower --batch_size \(\d+ fits\) or --image_size'),
                                        (3000000, r'a smaller --depth or fewer classes')])
def test_an_address_space_limit_too_small_for_the_step_is_one_line(tmp_path, kib, advice):
    # ulimit -v 3000000 used to end in a segfault, 4500000 in oneDNN's traceback (could not create a primitive)
    result = run_limited(kib, 'train', '--depth', 50, '--batch_size', 512, '--model_dir', tmp_path / 'run')
    line = only_line(result)
    assert re.match(r'resnet_graph.train: error: a training step of depth 50, --batch_size 512, --image_size 32 needs '
                    r'at least [\d.]+ GiB \(.*\) and the address-space limit \(ulimit -v\) leaves room for [\d.]+ GiB '
                    r'of tensors \(TensorFlow maps [\d.]+ GiB itself, and up to 2 times the tensors it holds\); raise '
                    r'ulimit -v to \d+ or more, or %s$' % advice, line), line
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_a_generous_address_space_limit_lets_a_run_finish(tmp_path):
    result = run_limited(12 << 20, 'train', *SMALL, '--max_steps', 1, '--eval_every', 1, '--model_dir', tmp_path / 'run')
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'test accuracy' in result.stdout


def test_the_address_space_limit_counts_what_tensorflow_maps(monkeypatch):
    from resnet_graph.training import memory
    monkeypatch.setattr(memory, '_meminfo_available', lambda: 64 << 30)
    monkeypatch.setattr(memory, '_cgroup_room', lambda: None)
    monkeypatch.setattr(memory.resource, 'getrlimit', lambda which: (memory.resource.RLIM_INFINITY,) * 2)
    assert memory.limit() == (64 << 30, 'this machine has %s available')  # unlimited: the common case
    mapped = memory.tensorflow_mapped()
    assert mapped >= memory.SESSION_MAPPED + (0 if 'tensorflow' in sys.modules else memory.TENSORFLOW_IMPORT_MAPPED)
    monkeypatch.setattr(memory.resource, 'getrlimit', lambda which: (mapped + (1 << 30), memory.resource.RLIM_INFINITY))
    room, phrase = memory.limit()
    assert (1 << 29) - (64 << 20) <= room <= 1 << 29 and 'ulimit -v' in phrase  # the allocator maps twice the tensors
    monkeypatch.setattr(memory.resource, 'getrlimit', lambda which: (1 << 20, memory.resource.RLIM_INFINITY))
    assert memory.limit()[0] == 0


# ---- 3: a JPEG cut short ------------------------------------------------------------------------------------------

def write_jpeg(path, seed, cut=False):
    """A 16x16 progressive JPEG of smooth colours; ``cut``: its first half only (libjpeg prints its own line)."""
    import io
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:16, 0:16]
    pixels = np.stack([x * 16, y * 16, (x + y + seed) * 7 % 256], -1).astype(np.uint8)
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, 'JPEG', progressive=True, quality=90)
    path.write_bytes(data.getvalue()[:len(data.getvalue()) // 2] if cut else data.getvalue())
    return path


@pytest.fixture(scope='module')
def jpeg_run(tmp_path_factory):
    """(run directory, stdout, stderr) of a short run on a folder of JPEGs, one of them cut short."""
    root = tmp_path_factory.mktemp('jpegs')
    for c, name in enumerate(('ant', 'bee')):
        os.makedirs(root / 'data' / name)
        for i in range(8):
            write_jpeg(root / 'data' / name / ('%d.jpg' % i), seed=10 * c + i, cut=(c, i) == (0, 3))
    result = run_cli('train', *SMALL, '--dataset', 'folder', '--data_dir', root / 'data', '--batch_size', 4,
                     '--validation_fraction', 0.25, '--max_steps', 2, '--eval_every', 2, '--model_dir', root / 'run',
                     timeout=300)
    assert result.returncode == 0, result.stderr
    return root, result


@pytest.mark.slow
def test_a_jpeg_cut_short_is_skipped_in_training_with_our_line_only(jpeg_run):
    root, result = jpeg_run
    assert result.stderr.splitlines() == ['resnet_graph.train: warning: skipped corrupt image %s (1 skipped so far; '
                                          '--strict_data makes this an error)' % (root / 'data' / 'ant' / '3.jpg')]


@pytest.mark.slow
def test_a_jpeg_cut_short_is_one_line_in_predict(jpeg_run, tmp_path):
    root, _ = jpeg_run
    good, cut = write_jpeg(tmp_path / 'good.jpg', 1), write_jpeg(tmp_path / 'cut.jpg', 1, cut=True)
    result = run_cli('predict', '--model_dir', root / 'run', good, cut, timeout=120)
    assert only_line(result) == ('resnet_graph.predict: error: %s: not a readable PNG, JPEG, GIF, BMP or WebP image '
                                 '(cut short or damaged: Invalid JPEG data or crop window.)' % cut)
    assert result.stdout.startswith('%s: ' % good)


# ---- 2: an event file that cannot be written ------------------------------------------------------------------------

FULL_DISK = '''
import resource, sys
from resnet_graph import cli
cli.quiet_tensorflow()
import tensorflow as tf
from resnet_graph.training import summaries
tf.compat.v1.disable_eager_execution()
writer = summaries.EventWriter(sys.argv[1])
writer.add_summary(tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag='a', simple_value=1.0)]), 1)
writer.flush()
resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))  # the disk is full from here on
big = tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag='a' * 1000, simple_value=2.0)])
try:
    writer.add_summary(big, 2)
    writer.flush()
    writer.add_summary(big, 3)
except summaries.EventWriteError as e:
    print(e)
writer.close()  # after the failure: nothing more, no second error
'''


@pytest.mark.slow
def test_an_event_file_that_cannot_be_written_is_one_error_without_the_thread_traceback(tmp_path):
    result = subprocess.run([sys.executable, '-c', FULL_DISK, str(tmp_path / 'train')], env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == '', result.stderr
    event_file, = (tmp_path / 'train').iterdir()
    assert result.stdout == ('cannot write the event file %s: File too large; free space or fix the directory\n'
                             % event_file)


REMOVE_EVENTS_AT_STEP_2 = '''
import shutil, sys
from resnet_graph import cli
cli.quiet_tensorflow()  # before the trainer's import loads TensorFlow, as cli.run does
from resnet_graph import train
from resnet_graph.training import trainer
log_step = trainer.Trainer._log_step
def remove_events(self, step, *args):
    log_step(self, step, *args)
    if step == 2:
        shutil.rmtree(self.run.join('train'))
trainer.Trainer._log_step = remove_events
sys.argv[0] = 'resnet_graph.train'
train.cli_main()
'''


@pytest.mark.slow
def test_an_event_directory_removed_mid_run_stops_with_a_checkpoint_and_the_run_resumes(tmp_path):
    args = SMALL + ['--max_steps', 4, '--eval_every', 3, '--model_dir', tmp_path / 'run']
    result = subprocess.run([sys.executable, '-c', REMOVE_EVENTS_AT_STEP_2] + [str(a) for a in args], env=ENV,
                            capture_output=True, text=True, timeout=300)
    line = only_line(result)
    assert re.match(r'resnet_graph.train: error: cannot write the event file %s/events.out.tfevents.\S+: it was '
                    r'removed \(its directory too\?\); keep the run directory whole while training \(stopped at step 2, '
                    r'saved %s; run the same command to resume\)$'
                    % (re.escape(str(tmp_path / 'run' / 'train')), re.escape(str(tmp_path / 'run' / 'model.ckpt-2'))),
                    line), line
    resumed = run_cli('train', *args)
    assert resumed.returncode == 0 and resumed.stderr == '', resumed.stderr
    assert 'resuming from %s at step 2' % (tmp_path / 'run' / 'model.ckpt-2') in resumed.stdout
    assert 'step 4/4' in resumed.stdout and os.listdir(tmp_path / 'run' / 'train')


OOM_PAST_THE_ESTIMATE = '''
from resnet_graph import cli
from resnet_graph import flags
flags.define_train()  # the advice names train's flags
def main(args):  # a step that needs more than the memory estimate said: a 4 TiB tensor
    import tensorflow as tf
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        n = v1.placeholder(tf.int64, [])
        session.run(tf.reduce_sum(tf.ones(tf.stack([n]), tf.float32)), {n: 2 ** 40})
cli.run('resnet_graph.train', main, ['train'])
'''


@pytest.mark.slow
def test_an_allocation_that_fails_past_the_estimate_is_one_line():
    result = subprocess.run([sys.executable, '-c', OOM_PAST_THE_ESTIMATE], env=ENV, capture_output=True, text=True,
                            timeout=120)
    line = only_line(result)
    assert line.startswith('resnet_graph.train: error: out of memory: OOM when allocating tensor with '
                           'shape[1099511627776] and type float on ') and line.endswith(
        '; lower --batch_size or --image_size, or give the process more memory (a run resumes from its last '
        'checkpoint with the same command)'), line


# ---- f20: seeds past 32 bits, infinite float flags, summary's empty --model_dir, a closed stdout ------------------

@pytest.mark.parametrize('flag,value', [('seed', '4294967296'), ('seed', '99999999999999999999'),
                                        ('split_seed', '4294967296')])
def test_a_seed_past_32_bits_is_one_line_and_writes_nothing(tmp_path, flag, value):
    run = tmp_path / 'run'
    result = run_cli('train', *SMALL, '--max_steps', '1', '--model_dir', run, '--%s' % flag, value, timeout=120)
    assert only_line(result) == ('resnet_graph.train: error: --%s must be at least 0 and at most 4294967295, got %s'
                                 % (flag, value))
    assert not run.exists()


@pytest.mark.parametrize('flag,value', [('learning_rate', 'inf'), ('weight_decay', 'inf'), ('momentum', '-inf'),
                                        ('width_multiplier', 'inf'), ('lr_values', '0.1,inf'),
                                        ('boundaries_epochs', 'nan')])
def test_a_float_flag_that_is_not_finite_is_one_line_and_writes_nothing(tmp_path, flag, value):
    run = tmp_path / 'run'
    extra = ['--schedule', 'piecewise', '--boundaries_epochs', '1'] if flag == 'lr_values' else (
        ['--schedule', 'piecewise'] if flag == 'boundaries_epochs' else [])
    result = run_cli('train', *SMALL, '--max_steps', '1', '--model_dir', run, *extra, '--%s=%s' % (flag, value),
                     timeout=120)
    assert only_line(result) == 'resnet_graph.train: error: --%s must be a finite number, got %s' % (flag, value)
    assert not run.exists()


def test_every_float_flag_of_train_is_checked_for_finiteness():
    import config
    from resnet_graph.errors import UsageError
    from resnet_graph.train import require_finite
    cfg = config.RunConfig.defaults()
    floats = [k for k in config.TRAIN if isinstance(getattr(cfg, k), float)]
    assert {'learning_rate', 'weight_decay', 'label_smoothing', 'bn_momentum', 'validation_fraction'} <= set(floats)
    for name in floats:
        with pytest.raises(UsageError, match='--%s must be a finite number, got inf' % name):
            require_finite(cfg.replace(**{name: float('inf')}))


@pytest.mark.parametrize('value', ['', ' '])
def test_summary_refuses_an_empty_model_dir_like_the_other_commands(value):
    result = run_cli('summary', '--model_dir', value, timeout=120)
    assert only_line(result) == ("resnet_graph.summary: error: --model_dir %r names no directory; give the run "
                                 "directory written by resnet_graph.train or an import command" % value)


@pytest.mark.parametrize('args', [['summary', '--depth', '50'], ['summary', '--help']])
def test_a_stdout_closed_early_ends_quietly(args):
    reader, writer = os.pipe()
    os.close(reader)  # the reader (`| head -1`) has gone before the command writes
    proc = subprocess.run([sys.executable, '-m', 'resnet_graph.' + args[0]] + args[1:], env=ENV, stdout=writer,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(writer)
    assert proc.returncode == 0 and proc.stderr == '', (proc.returncode, proc.stderr[-2000:])
