"""Issue 20, what the attack found open: a huge batch, circular and unreadable flag files, TensorFlow's
deprecation lines on success, the imports' writes (the run lock, atomic)."""
import glob
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SMALL, error_lines, run_cli

ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
COMMANDS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'resnet_graph', '*.py'))
                  if 'def cli_main' in open(p).read())
FLAGFILE_HINT = '; give a text file of --flag=value lines'


def only_line(result):
    """The one stderr line of a command that exited 2 (nothing else on stderr)."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert len(result.stderr.splitlines()) == 1, result.stderr
    line, = error_lines(result.stderr)
    return line


# ---- a flag file that includes itself, or cannot be read ----------------------------------------------------

@pytest.mark.parametrize('command', COMMANDS)
def test_a_flagfile_that_includes_itself_is_refused_by_every_command(tmp_path, command):
    flagfile = tmp_path / 'a.flags'
    # the flags make the old behaviour (skip the circular line, run with the rest) a short run
    flagfile.write_text('--flagfile=%s\n--depth=8\n--image_size=16\n--max_steps=1\n' % flagfile)
    result = run_cli(command, '--flagfile', flagfile, '--model_dir', tmp_path / 'run', timeout=120)
    assert only_line(result) == ('resnet_graph.%s: error: --flagfile %s includes itself (%s -> %s); remove the '
                                 'circular --flagfile line' % (command, flagfile, flagfile, flagfile))
    assert not (tmp_path / 'run').exists()


def test_a_flagfile_cycle_through_another_file_is_refused(tmp_path):
    a, b = tmp_path / 'a.flags', tmp_path / 'b.flags'
    a.write_text('--depth=8\n--flagfile=%s\n--image_size=16\n--max_steps=1\n' % b)
    b.write_text('# b includes a again\n--batch_size=8\n--flagfile=%s\n' % a)
    result = run_cli('train', '--flagfile=%s' % a, '--model_dir', tmp_path / 'run', timeout=120)
    assert only_line(result) == ('resnet_graph.train: error: --flagfile %s includes itself (%s -> %s -> %s); '
                                 'remove the circular --flagfile line' % (a, a, b, a))
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_a_flagfile_included_twice_without_a_cycle_is_read(tmp_path):
    a, b = tmp_path / 'a.flags', tmp_path / 'b.flags'
    b.write_text('--depth=18\n')
    a.write_text('--flagfile=%s\n--flagfile=%s\n--image_size=32\n' % (b, b))
    result = run_cli('summary', '--flagfile', a, '--json', timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"depth": 18' in result.stdout and not result.stderr


@pytest.mark.parametrize('kind', ['missing', 'directory', 'device', 'nested missing', 'too big'])
def test_a_flagfile_that_cannot_be_read_is_one_clean_line(tmp_path, kind):
    missing = tmp_path / 'missing.flags'
    path = {'missing': missing, 'directory': tmp_path, 'device': '/dev/zero', 'nested missing': tmp_path / 'a.flags',
            'too big': tmp_path / 'big.flags'}[kind]
    (tmp_path / 'a.flags').write_text('--depth=18\n--flagfile=%s\n' % missing)
    (tmp_path / 'big.flags').write_text('# padding\n' * 200000)
    result = run_cli('train', '--flagfile', path, '--model_dir', tmp_path / 'run', timeout=120)
    line = only_line(result)
    assert 'ERROR' not in line
    assert line == 'resnet_graph.train: error: ' + {
        'missing': 'cannot read --flagfile %s: No such file or directory' % missing,
        'directory': '--flagfile %s is a directory, not a file' % tmp_path,
        'device': '--flagfile /dev/zero is a device, not a file',
        'nested missing': 'cannot read --flagfile %s: No such file or directory' % missing,
        'too big': '--flagfile %s is over 1048576 bytes: not a file of flags' % path}[kind] + FLAGFILE_HINT
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_a_flagfile_from_a_pipe_is_still_read(tmp_path):
    # bash's --flagfile <(...): a pipe is left to absl, unread by the check
    script = 'exec "$0" -m resnet_graph.summary --json --flagfile <(echo --depth=34)'
    result = subprocess.run(['bash', '-c', script, sys.executable], env=ENV, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"depth": 34' in result.stdout


# ---- the imports: the run lock, and no half run after a kill ------------------------------------------------

def small_config(model_dir):
    """An imported run's configuration for the smallest network (depth 8, 16x16x3, 10 classes)."""
    import config
    return config.RunConfig.defaults(depth=8, image_size=16, channels=3, num_classes=10, model_dir=str(model_dir),
                mean=[0.5] * 3, std=[0.25] * 3, dataset=None, class_names=[str(i) for i in range(10)])


def random_weights(cfg):
    """name -> the freshly initialised value of each variable of ``cfg``'s network."""
    import tensorflow as tf
    from resnet_graph.nets.model import ResNet
    with tf.Graph().as_default():
        model = ResNet.from_config(cfg, training=False)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return {model.local_name(v): value for v, value in zip(model.variables, sess.run(model.variables))}


def test_an_import_is_refused_while_another_writer_holds_the_run(tmp_path):
    from resnet_graph.errors import UsageError
    from resnet_graph.serving import imported
    from resnet_graph.training import lifecycle
    from resnet_graph.training.run_dir import RunDir
    run = tmp_path / 'run'
    cfg = small_config(run)
    weights = random_weights(cfg)
    handle = lifecycle._acquire(str(run))  # a trainer's hold on the directory
    try:
        with pytest.raises(UsageError, match=r'^%s is in use by another writer \(resnet_graph.train, pid %d on host '
                                             % (run, os.getpid())):
            imported.write_run(cfg, weights)
    finally:
        handle.close()
    assert not RunDir(str(run)).has_checkpoint_files() and not (run / 'config.json').exists()
    prefix = imported.write_run(cfg, weights)  # the lock is free again
    assert prefix == str(run / 'best' / 'model.ckpt-0') and RunDir(str(run)).best_checkpoint() == prefix
    assert sorted(os.listdir(run)) == ['.lock', 'best', 'config.json', 'eval', 'train']


@pytest.mark.parametrize('command,args', [
    ('import_keras', ['--model', 'resnet50', '--weights']),
    ('import_checkpoint', ['--variant', 'official_v1', '--checkpoint']),
])
def test_an_import_command_refuses_a_run_another_writer_holds(tmp_path, command, args):
    from resnet_graph.training import lifecycle
    (tmp_path / 'weights.h5').write_bytes(b'')  # never read: the lock is checked first
    (tmp_path / 'weights.h5.index').write_bytes(b'')
    handle = lifecycle._acquire(str(tmp_path / 'run'))
    try:
        result = run_cli(command, *args, tmp_path / 'weights.h5', '--model_dir', tmp_path / 'run', timeout=120)
    finally:
        handle.close()
    line = only_line(result)
    assert line.startswith('resnet_graph.%s: error: %s is in use by another writer (resnet_graph.train, pid %d on '
                           'host %s since ' % (command, tmp_path / 'run', os.getpid(), os.uname().nodename)), line
    assert line.endswith('); wait for it to end, or stop it, or write into another --model_dir'), line


KILLED_IMPORT = '''
import os, sys
sys.path.insert(0, %r)
import test_hardening_more as t
from resnet_graph.serving import imported
from resnet_graph.training import run_dir
cfg = t.small_config(sys.argv[1])
weights = t.random_weights(cfg)
if sys.argv[2] == 'config':
    run_dir.atomic_write_json = lambda *a, **k: os._exit(9)
else:
    os.rename = lambda *a, **k: os._exit(9)
imported.write_run(cfg, weights)
''' % os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
@pytest.mark.parametrize('point', ['config', 'rename'])
def test_an_import_killed_midway_leaves_no_run_and_the_next_import_completes(tmp_path, point):
    from resnet_graph.serving import imported
    from resnet_graph.training.run_dir import RunDir
    run = tmp_path / 'run'
    killed = subprocess.run([sys.executable, '-c', KILLED_IMPORT, str(run), point], env=ENV, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr[-2000:]  # died at the config write, or at the commit
    assert not RunDir(str(run)).has_checkpoint_files()  # nothing that a later command takes for a run
    cfg = small_config(run)
    imported.write_run(cfg, random_weights(cfg))
    assert RunDir(str(run)).best_checkpoint() == str(run / 'best' / 'model.ckpt-0')
    assert not glob.glob(str(run / '.tmp-*'))  # the killed import's folder was removed under the lock


# ---- success prints no TensorFlow warning lines ----------------------------------------------------------------

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A two-step SMALL run on digits: (model_dir, a 16x16 gray PNG)."""
    import numpy as np
    from PIL import Image
    root = tmp_path_factory.mktemp('quiet')
    result = run_cli('train', *SMALL, '--max_steps', 2, '--eval_every', 2, '--model_dir', root / 'run')
    assert result.returncode == 0 and not result.stderr, result.stderr
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (16, 16)).astype(np.uint8)).save(str(root / 'x.png'))
    return root / 'run', root / 'x.png'


@pytest.mark.slow
@pytest.mark.parametrize('command,args', [
    ('export', ['--format', 'saved_model', '--out', '{out}/saved']),
    ('export', ['--format', 'frozen_graph', '--out', '{out}/frozen.pb']),
    ('plot', ['--out', '{out}/curves.png']),
    ('evaluate', []),
    ('predict', ['{png}']),
])
def test_success_prints_no_tensorflow_warnings(trained, tmp_path, command, args):
    if command == 'plot':
        pytest.importorskip('matplotlib')
    model_dir, png = trained
    args = [a.format(out=tmp_path, png=png) for a in args]
    result = run_cli(command, '--model_dir', model_dir, *args, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''  # deprecation notices ("WARNING:tensorflow:From ...") came here
    assert 'WARNING' not in result.stdout and 'deprecat' not in result.stdout.lower(), result.stdout


# ---- batch sizes -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('command,value,message', [
    ('train', 0, '--batch_size must be at least 1, got 0'),
    ('train', -3, '--batch_size must be at least 1, got -3'),
    ('benchmark', 0, '--batch_size must be at least 1, got 0'),
    ('benchmark', -1, '--batch_size must be at least 1, got -1'),
    ('train', 'abc', '--batch_size=abc is not an integer: give a whole number; see python -m resnet_graph.train --help'),
    ('evaluate', 8, "Unknown command line flag 'batch_size'; see python -m resnet_graph.evaluate --help"),
    ('predict', 8, "Unknown command line flag 'batch_size'; see python -m resnet_graph.predict --help"),
])
def test_a_batch_size_below_one_or_on_a_command_without_one_is_one_line(tmp_path, command, value, message):
    result = run_cli(command, '--batch_size', value, cwd=tmp_path, timeout=120)
    line = only_line(result)
    assert line == 'resnet_graph.%s: error: %s' % (command, message)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_a_batch_larger_than_the_training_split_is_said(tmp_path):
    result = run_cli('train', '--depth', 8, '--image_size', 8, '--batch_size', 2000, '--max_steps', 1,
                     '--model_dir', tmp_path / 'run', timeout=300)
    assert result.returncode == 0, result.stderr
    assert ('--batch_size 2000 is larger than the training split (1259 images): each step repeats images to fill '
            'its batch, and an epoch is one step') in result.stdout, result.stdout


# ---- a batch that cannot fit: refused before anything is built -------------------------------------------------

def test_a_huge_batch_is_refused_with_the_batch_that_fits_and_a_normal_one_passes(tmp_path):
    import config
    from resnet_graph.training import memory
    result = run_cli('train', *SMALL, '--batch_size', 10 ** 8, '--max_steps', 1, '--model_dir', tmp_path / 'run',
                     timeout=60)
    line = only_line(result)
    assert line.startswith('resnet_graph.train: error: a training step of depth 8, --batch_size 100000000, '
                           '--image_size 16 needs at least '), line
    fits = int(line.split('lower --batch_size (')[1].split(' fits)')[0])
    assert line.endswith(' GiB available; lower --batch_size (%d fits) or --image_size' % fits)
    cfg = config.RunConfig.defaults(depth=8, image_size=16, batch_size=fits)
    assert 32 < fits < 10 ** 8
    memory.check(cfg.replace(batch_size=32))  # SMALL's batch passes
    available = memory.total(memory.estimate(cfg, 3, 10))  # as if the machine had exactly what that batch needs
    assert memory.largest_batch(cfg.replace(batch_size=10 ** 8), 3, 10, available) == fits
    assert not (tmp_path / 'run').exists()


def test_a_huge_batch_counts_the_pipeline_and_the_backward_pass():
    import config
    from resnet_graph.training import memory
    # depth 8 at 16x16, per image: 37,120 float32 values kept for the backward pass (the input 256; each of the
    # 7 convolutions' output and its batch norm + ReLU output, 2 x (4,096 + 2 x 4,096 + 2 x 2,048 + 2 x 1,024)),
    # the largest gradient 4,096; five batches in flight, each as fetched and as normalised, 10 x 256
    cfg = config.RunConfig.defaults(depth=8, image_size=16, batch_size=1000)
    activations, weights, inputs = memory.estimate(cfg, channels=1, num_classes=10)
    assert activations == 4 * 1000 * (37120 + 4096) and inputs == 4 * 1000 * 10 * 256


def test_validation_batches_that_cannot_fit_are_refused_even_at_batch_1():
    import config
    from resnet_graph.errors import UsageError
    from resnet_graph.training import memory
    # ResNet-50 at 1024x1024: its stem's output alone is 64 MiB an image; validation runs 128 images at once
    cfg = config.RunConfig.defaults(depth=50, image_size=1024, batch_size=1)
    with pytest.raises(UsageError, match=r'lower --image_size \(no --batch_size fits at this size\)$'):
        memory.check(cfg, 3, 10, available=8 * 2 ** 30)


def test_a_benchmark_inference_pass_that_cannot_fit_is_refused(tmp_path):
    result = run_cli('benchmark', '--depth', 18, '--mode', 'infer', '--batch_size', 10 ** 7, cwd=tmp_path,
                     timeout=60)
    line = only_line(result)
    assert line.startswith('resnet_graph.benchmark: error: an inference pass of depth 18, --batch_size 10000000, '
                           '--image_size 32 needs at least '), line


def test_an_import_refuses_an_image_size_no_image_of_fits(tmp_path):
    (tmp_path / 'model.ckpt.index').write_bytes(b'')  # never read: the size is checked first
    result = run_cli('import_checkpoint', '--variant', 'official_v1', '--checkpoint', tmp_path / 'model.ckpt',
                     '--image_size', 100000, '--model_dir', tmp_path / 'run', timeout=120)
    line = only_line(result)
    assert line.startswith('resnet_graph.import_checkpoint: error: an inference pass of depth 50, one image, '
                           '--image_size 100000 needs at least '), line
    assert line.endswith(' available; lower --image_size'), line
    assert not (tmp_path / 'run').exists()


def test_a_container_memory_limit_is_what_is_available(tmp_path, monkeypatch):
    from resnet_graph.training import memory
    limit, usage, stat = tmp_path / 'memory.max', tmp_path / 'memory.current', tmp_path / 'memory.stat'
    monkeypatch.setattr(memory, 'CGROUP_FILES', ((str(limit), str(usage), str(stat), 'inactive_file'),))
    limit.write_text('%d\n' % (2 << 30))
    usage.write_text('%d\n' % (3 << 29))
    stat.write_text('anon 100\ninactive_file %d\nactive_file 7\n' % (1 << 28))
    assert memory.available_bytes() == (2 << 30) - (3 << 29) + (1 << 28)  # far below this machine's MemAvailable
    limit.write_text('max\n')
    assert memory.available_bytes() == memory._meminfo_available() > 0


def test_weights_that_cannot_fit_are_named_as_such():
    import config
    from resnet_graph.errors import UsageError
    from resnet_graph.training import memory
    with pytest.raises(UsageError, match=r'; the weights alone do not fit: a smaller --depth or fewer classes$'):
        memory.check(config.RunConfig.defaults(depth=50, image_size=32, batch_size=1), 3, 10 ** 7, available=2 ** 30)


def test_an_import_onto_a_full_disk_names_the_bytes_and_leaves_no_run(tmp_path, monkeypatch):
    import tensorflow as tf
    from resnet_graph.errors import UsageError
    from resnet_graph.serving import imported
    from resnet_graph.training.run_dir import RunDir
    cfg = small_config(tmp_path / 'run')

    def full(self, sess, prefix, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, 'Graph execution error:\n\nDetected at node save/SaveV2\n'
                                               '%s-0.data-00000-of-00001.tempstate5; No space left on device' % prefix)

    monkeypatch.setattr(tf.compat.v1.train.Saver, 'save', full)
    with pytest.raises(UsageError) as raised:
        imported.write_run(cfg, random_weights(cfg))
    message = str(raised.value)
    assert message.startswith('cannot write the run directory %s: no space left on device' % cfg.model_dir), message
    assert 'bytes' in message and 'Graph execution error' not in message
    assert not RunDir(cfg.model_dir).has_checkpoint_files()
    leftovers = os.listdir(cfg.model_dir) if os.path.isdir(cfg.model_dir) else []
    assert not [name for name in leftovers if name.startswith('.tmp-import-')], leftovers
