"""Flag values too large to use (integers past int64, floats past float32, nested flag files without end) are one
line on stderr and exit 2, checked for every command in one place (cli.parse_flags), before anything runs."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, error_lines, run_cli

COMMANDS = ('train', 'evaluate', 'predict', 'export', 'plot', 'summary', 'benchmark', 'cluster', 'import_keras',
            'import_checkpoint')
HUGE = 99999999999999999999999
INT64_MAX = 2 ** 63 - 1
EPOCHS = '2147483647: epochs times the steps of an epoch must fit int64'
TIGHTER = {'epochs': EPOCHS, 'warmup_epochs': EPOCHS, 'boundaries_epochs': EPOCHS,
           'image_size': '1048576: pixels a side',
           'channels': '1048576: channels of an image', 'num_classes': "2147483647: TensorFlow's int32 shapes"}

# In a fresh process: the command's flags defined (its cli_main, with cli.run stubbed), then every integer flag
# parsed with a value just past int64 each way, and every float flag (lists too) with one past float32, through
# cli.parse_flags; prints {flag: [exit code, stderr]} for each.
PROBE = r'''
import contextlib, importlib, io, json, sys
from absl import flags
from resnet_graph import cli
prog = 'resnet_graph.' + sys.argv[1]
cli.run = lambda *args, **kwargs: None
importlib.import_module(prog).cli_main()
FLAGS = flags.FLAGS
results = {}
for name in sorted(FLAGS):
    parser = FLAGS[name].parser
    kind = 'float' if isinstance(parser, flags.FloatParser) or type(parser).__name__ == '_FloatListParser' else (
        'int' if isinstance(parser, flags.IntegerParser) else None)
    values = {'int': [2 ** 63, -2 ** 63 - 1], 'float': ['1e39', '-1e39']}.get(kind, [])
    for value in values:
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                cli.parse_flags(prog, [prog, '--%s=%s' % (name, value)] + sys.argv[2:])
            code = 0
        except SystemExit as e:
            code = e.code
        results['%s %s %s' % (kind, name, value)] = [code, stderr.getvalue()]
        FLAGS.unparse_flags()
print(json.dumps(results))
'''


def _probe(command):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    required = {'import_keras': ['--model=resnet50'], 'import_checkpoint': ['--variant=slim_v1']}.get(command, [])
    done = subprocess.run([sys.executable, '-c', PROBE, command] + required, env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize('command', COMMANDS)
def test_every_number_flag_of_every_command_is_bounded(command):
    results = _probe(command)
    prog = 'resnet_graph.' + command
    for key, (code, stderr) in results.items():
        kind, name, value = key.split()
        if name in ('seed', 'split_seed'):  # train's own check, at most 2 ** 32 - 1 (test_hardening_last)
            assert code == 0, (key, stderr)
            continue
        if name in TIGHTER and value[0] != '-':
            bound = 'too large (at most %s)' % TIGHTER[name]
        elif kind == 'int':
            bound = 'too large (at most %d)' % INT64_MAX if value[0] != '-' else 'too small (at least %d)' % -2 ** 63
        else:
            bound = ('too large (at most 3.4028234663852886e+38)' if value[0] != '-' else
                     'too small (at least -3.4028234663852886e+38)')
        shown = value.replace('1e39', '1e+39')
        ours = '%s: error: --%s %s is %s; see python -m %s --help\n' % (prog, name, shown, bound, prog)
        absl_bound = '%s: error: flag --%s=%s: ' % (prog, name, value)  # a lower_bound of its definition
        assert code == 2 and (stderr == ours or stderr.startswith(absl_bound) and stderr.count('\n') == 1), (
            key, stderr)
    names = {key.split()[1] for key in results}
    expected = {'train': {'max_steps', 'epochs', 'batch_size', 'log_every', 'eval_every', 'max_to_keep',
                          'trace_step', 'num_devices', 'max_image_pixels', 'seed', 'width_multiplier',
                          'learning_rate', 'warmup_epochs', 'boundaries_epochs', 'lr_values', 'label_smoothing',
                          'validation_fraction', 'clip_gradient_norm'},
                'benchmark': {'steps', 'repeats', 'warmup', 'batch_size', 'depth'}, 'predict': {'top_k'},
                'cluster': {'ps', 'workers', 'grace_secs'}, 'import_checkpoint': {'num_classes', 'image_size'},
                'summary': {'width_multiplier', 'image_size'}}.get(command, set())
    assert expected <= names


@pytest.mark.parametrize('command, args, message', [
    ('train', ['--depth', 8, '--image_size', 16, '--max_steps', HUGE, '--model_dir', 'hx'],
     '--max_steps %d is too large (at most %d)' % (HUGE, INT64_MAX)),
    ('train', ['--depth', 8, '--image_size', 16, '--epochs', 2 ** 40, '--max_steps', 2, '--model_dir', 'hx'],
     '--epochs %d is too large (at most 2147483647: epochs times the steps of an epoch must fit int64)' % 2 ** 40),
    ('train', ['--depth', 8, '--max_steps', 2, '--warmup_epochs', 1e30, '--model_dir', 'hx'],
     '--warmup_epochs 1e+30 is too large (at most 2147483647: epochs times the steps of an epoch must fit int64)'),
    ('train', ['--depth', 8, '--max_steps', 2, '--schedule', 'piecewise', '--boundaries_epochs', '1,1e308',
               '--model_dir', 'hx'],
     '--boundaries_epochs 1,1e+308 is too large (at most %s)' % EPOCHS),
    ('train', ['--depth', 8, '--image_size', 16, '--width_multiplier', 1e300, '--max_steps', 2, '--model_dir', 'hx'],
     '--width_multiplier 1e+300 is too large (at most 3.4028234663852886e+38)'),
    ('train', ['--depth', 8, '--learning_rate', 1e308, '--max_steps', 2, '--model_dir', 'hx'],
     '--learning_rate 1e+308 is too large (at most 3.4028234663852886e+38)'),
    ('train', ['--depth', 8, '--batch_size', -HUGE, '--model_dir', 'hx'],
     '--batch_size -%d is too small (at least %d)' % (HUGE, -2 ** 63)),
    ('summary', ['--image_size', 2 ** 63 - 1],
     '--image_size %d is too large (at most 1048576: pixels a side)' % INT64_MAX),
    ('summary', ['--num_classes', 2 ** 31], "--num_classes 2147483648 is too large (at most 2147483647: TensorFlow's "
                                            "int32 shapes)"),
    ('benchmark', ['--steps', HUGE], '--steps %d is too large (at most %d)' % (HUGE, INT64_MAX)),
    ('predict', ['--model_dir', 'nowhere', '--top_k', HUGE, 'x.png'],
     '--top_k %d is too large (at most %d)' % (HUGE, INT64_MAX)),
    ('cluster', ['--workers', HUGE], '--workers %d is too large (at most %d)' % (HUGE, INT64_MAX)),
])
def test_a_huge_number_is_one_line_and_writes_nothing(tmp_path, command, args, message):
    result = run_cli(command, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == ['resnet_graph.%s: error: %s; see python -m resnet_graph.%s --help'
                                          % (command, message, command)], result.stderr
    assert 'Traceback' not in result.stderr and os.listdir(tmp_path) == []


def test_a_huge_number_in_a_flag_file_names_its_line(tmp_path):
    (tmp_path / 'run.flags').write_text('--depth=8\n--log_every=%d\n' % HUGE)
    result = run_cli('train', '--flagfile=run.flags', cwd=tmp_path)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        'resnet_graph.train: error: --log_every %d is too large (at most %d) (line 2 of --flagfile run.flags); '
        'see python -m resnet_graph.train --help' % (HUGE, INT64_MAX)]


@pytest.mark.parametrize('value, widest', [('1e30', '6.4e+31'), ('inf', 'inf'), ('2000', '128000')])
def test_a_width_multiplier_past_any_layer_is_one_line(tmp_path, value, widest):
    result = run_cli('summary', '--depth', 8, '--width_multiplier', value, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [
        'resnet_graph.summary: error: width_multiplier=%s makes the widest layer %s channels, over the 65536 a '
        'layer may have; give width_multiplier at most 1024 for this network' % (value.replace('1e30', '1e+30'),
                                                                               widest)], result.stderr


def test_the_width_bound_in_process():
    from resnet_graph.nets import variants
    assert variants.resolve(50, width_multiplier=128).inner_widths[-1] == 65536
    with pytest.raises(ValueError, match='width_multiplier=129 makes the widest layer 66048 channels, over the '
                                         '65536 a layer may have; give width_multiplier at most 128 for this network'):
        variants.resolve(50, width_multiplier=129)


def _nested(tmp_path, leaf):
    (tmp_path / 'L1.flags').write_text('--flagfile=L2.flags\n' * 200)
    (tmp_path / 'L2.flags').write_text('--flagfile=L3.flags\n' * 200)
    (tmp_path / 'L3.flags').write_text(leaf)


@pytest.mark.parametrize('leaf, message', ids=['arguments', 'reads'], argvalues=[
    ('--depth=8\n' * 200, '--flagfile L1.flags expands to more than 100000 arguments (its nested --flagfile lines '
                          'included); include each flag file once, or give fewer flags'),
    ('', '--flagfile L1.flags reads flag files more than 10000 times (its nested --flagfile lines included); '
         'include each flag file once'),
])
def test_nested_flag_files_are_bounded(tmp_path, leaf, message):
    _nested(tmp_path, leaf)
    result = run_cli('summary', '--flagfile=L1.flags', cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ['resnet_graph.summary: error: %s' % message]


def test_nested_flag_files_stop_early(tmp_path, monkeypatch):
    from resnet_graph import flagfiles
    from resnet_graph.errors import UsageError
    _nested(tmp_path, '--depth=8\n' * 200)
    monkeypatch.chdir(tmp_path)
    reads = []
    real = flagfiles.read

    def read(name):
        reads.append(name)
        assert len(reads) < 2000, 'the expansion did not stop at the bound'
        return real(name)
    monkeypatch.setattr(flagfiles, 'read', read)
    with pytest.raises(UsageError, match='more than 100000 arguments'):
        flagfiles.expand(['--flagfile=L1.flags'])
    assert len(reads) <= 1 + 3 + 100000 // 200 + 1  # L1, the L2s and the L3s up to the bound, not 40,000 L3s
    assert len(flagfiles.expand(['--flagfile=L3.flags', '--flagfile', 'L3.flags'])) == 400  # within the bound


def test_the_bytes_read_over_all_flag_files_are_bounded(tmp_path, monkeypatch):
    from resnet_graph import flagfiles
    from resnet_graph.errors import UsageError
    (tmp_path / 'a.flags').write_text('# a comment line of forty bytes or so..\n' * 100)  # 4,000 bytes, no flags
    (tmp_path / 'top.flags').write_text('--flagfile=a.flags\n' * 100)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(flagfiles, 'MAX_TOTAL_BYTES', 100000)
    with pytest.raises(UsageError, match=r'^--flagfile top.flags reads more than 100000 bytes of flag files \(its '
                                         r'nested --flagfile lines included\); include each flag file once$'):
        flagfiles.expand(['--flagfile=top.flags'])
