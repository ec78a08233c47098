"""Issue 20's leftovers: a cluster's train flags, memory advice and the inference estimate under ulimit -v, flag
and file wordings, libjpeg's lines in the stream, byte positions past a read chunk."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SMALL, run_cli

ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
TRAIN_ONLY = ('--batch_size', '--depth', '--image_size')  # flags evaluate and predict do not have


def only_line(result):
    """The one stderr line of a command that exited 2 (nothing else on stderr)."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr.strip()


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A trained run directory (depth 8, 16x16 digits, 2 steps) and a PNG for predict."""
    root = tmp_path_factory.mktemp('leftovers')
    result = run_cli('train', *SMALL, '--max_steps', 2, '--eval_every', 2, '--model_dir', root / 'run')
    assert result.returncode == 0, result.stderr[-2000:]
    import numpy as np
    from PIL import Image
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(root / 'digit.png')
    return root


# ---- memory under ulimit -v for inference ---------------------------------------------------------------------------

def run_limited(kib, *args):
    """python -m resnet_graph.<args> under ``ulimit -v kib``."""
    script = 'ulimit -v %d; exec "$0" -m resnet_graph.%s' % (kib, ' '.join("'%s'" % a for a in args))
    return subprocess.run(['bash', '-c', script, sys.executable], env=ENV, capture_output=True, text=True, timeout=300)


def inference_mapped_kib():
    """KiB of address space a process maps once it has imported what evaluate and predict import (TensorFlow)."""
    code = ('import resnet_graph.serving.inference\n'
            'print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmSize:")))')
    return int(subprocess.run([sys.executable, '-c', code], env=ENV, capture_output=True, text=True,
                              check=True, timeout=120).stdout)


@pytest.mark.slow
def test_evaluate_and_predict_run_under_a_limit_that_holds_an_inference_session(run):
    # evaluate and predict map 0.5-0.55 GiB past TensorFlow's import; the estimate counted a training session's
    # 1 GiB and refused them, and predict's file read then asked for --max_image_pixels' 160 MB (a MemoryError)
    kib = inference_mapped_kib() + (700 << 10)
    evaluate = run_limited(kib, 'evaluate', '--model_dir', run / 'run')
    assert evaluate.returncode == 0 and 'test split' in evaluate.stdout, evaluate.stderr[-2000:]
    predict = run_limited(kib, 'predict', '--model_dir', run / 'run', run / 'digit.png')
    assert predict.returncode == 0 and predict.stdout.startswith('%s: ' % (run / 'digit.png')), predict.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize('command', ['evaluate', 'predict'])
def test_an_inference_refused_under_ulimit_names_no_train_flag(run, command):
    args = ['--model_dir', run / 'run'] + ([run / 'digit.png'] if command == 'predict' else [])
    line = only_line(run_limited(inference_mapped_kib() + (200 << 10), command, *args))
    match = re.match(r'resnet_graph\.%s: error: %s describes a network that cannot run here: an inference pass of depth 8, '
                    r'one image, image size 16 needs at least .* and the address-space limit \(ulimit -v\) leaves room '
                    r'for 0 GiB of tensors .*; raise ulimit -v to (\d+) or more$' % (command, re.escape(str(run / 'run' / 'config.json'))),
                    line)
    assert match, line
    assert run_limited(int(match.group(1)), command, *args).returncode == 0  # the limit it names is enough


@pytest.mark.parametrize('flags, available, advice', [
    ((), 1 << 20, 'free memory, or use a machine with more'),
    ((), 1000, 'the weights alone do not fit; free memory, or use a machine with more'),
    (('image_size',), 1 << 20, 'lower --image_size'),
    (('image_size',), 1000, 'the weights alone do not fit; free memory, or use a machine with more'),
    (('batch_size', 'image_size', 'depth'), 1000, 'the weights alone do not fit: a smaller --depth or fewer classes'),
])
def test_the_memory_advice_names_only_the_commands_flags(flags, available, advice):
    import config
    from resnet_graph.errors import UsageError
    from resnet_graph.training import memory
    cfg = config.RunConfig.defaults(depth=8, image_size=512, batch_size=1)
    with pytest.raises(UsageError) as raised:
        memory.check(cfg, 1, 10, available=available, training=False, flags=flags)
    message = str(raised.value)
    assert message.endswith('; ' + advice), message
    assert ('--image_size 512' if 'image_size' in flags else 'image size 512') in message, message
    assert ('one image' in message) == ('batch_size' not in flags), message


def test_the_out_of_memory_advice_names_only_the_commands_flags():
    from resnet_graph import cli
    assert cli.memory_advice('resnet_graph.predict', ['model_dir', 'top_k']) == 'give the process more memory'
    assert cli.memory_advice('resnet_graph.benchmark', ['batch_size', 'image_size', 'depth']) == (
        'lower --batch_size or --image_size, or give the process more memory')
    assert cli.memory_advice('resnet_graph.train', ['batch_size', 'image_size']) == (
        'lower --batch_size or --image_size, or give the process more memory (a run resumes from its last checkpoint '
        'with the same command)')


# ---- wordings: --checkpoint '', predict's file names, flag files, --helpshort and --help=false -------------------

COMMANDS = ('train', 'evaluate', 'predict', 'export', 'plot', 'summary', 'cluster', 'benchmark', 'import_checkpoint',
            'import_keras')


@pytest.mark.slow
@pytest.mark.parametrize('command', ['evaluate', 'predict', 'export'])
@pytest.mark.parametrize('value', ['', ' '])
def test_an_empty_checkpoint_flag_is_named(run, command, value, tmp_path):
    extra = {'predict': [run / 'digit.png'], 'export': ['--format', 'saved_model', '--out', tmp_path / 'out']}
    result = run_cli(command, '--model_dir', run / 'run', '--checkpoint', value, *extra.get(command, []))
    assert only_line(result) == ("resnet_graph.%s: error: --checkpoint %r names no checkpoint; give best, latest or "
                                 "a checkpoint path" % (command, value))
    assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_predict_shows_an_empty_or_multi_line_file_name_on_one_line(run):
    odd = str(run / 'two\nlines.png')
    import shutil
    shutil.copy(run / 'digit.png', odd)
    result = run_cli('predict', '--model_dir', run / 'run', '', odd, str(run / 'no\nsuch.png'), run / 'digit.png')
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "resnet_graph.predict: error: '': an empty name, not a file; give each image's path",
        'resnet_graph.predict: error: %r: cannot read it (No such file or directory)' % str(run / 'no\nsuch.png')]
    shown = result.stdout.splitlines()
    assert len(shown) == 2 and shown[0].startswith('%r: ' % odd) and shown[1].startswith('%s: ' % (run / 'digit.png'))


def test_a_flag_file_behind_a_utf8_bom_is_read(tmp_path):
    flags = tmp_path / 'bom.flags'
    flags.write_bytes(b'\xef\xbb\xbf--depth=18\n--image_size=32\n')
    result = run_cli('summary', '--flagfile', flags, '--json', timeout=120)
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert '"depth": 18' in result.stdout and '"image_size": 32' in result.stdout


@pytest.mark.parametrize('line, message', [
    ('--nosuch=3', "Unknown command line flag 'nosuch'"),
    ('--depth=deep', '--depth=deep is not an integer: give a whole number'),
])
def test_a_bad_flag_from_a_flag_file_names_the_file(tmp_path, line, message):
    outer, inner = tmp_path / 'outer.flags', tmp_path / 'inner.flags'
    inner.write_text('--image_size=32\n%s\n' % line)
    outer.write_text('--depth=18\n--flagfile=%s\n' % inner)
    result = run_cli('summary', '--flagfile', outer, timeout=120)
    assert only_line(result) == 'resnet_graph.summary: error: %s (line 2 of --flagfile %s); see python -m ' \
                                'resnet_graph.summary --help' % (message, inner)


@pytest.mark.parametrize('command', COMMANDS)
def test_helpshort_prints_the_usage_and_help_false_runs_the_command(command):
    short = run_cli(command, '--helpshort', timeout=60)
    assert short.returncode == 0 and not short.stderr and '\nflags:\n' in short.stdout
    for off in ('--help=false', '--nohelp', '--helpfull=0', '--nohelpshort', '-h=f'):
        result = run_cli(command, off, '--nosuch', timeout=60)  # the command's own parse: an unknown flag
        assert only_line(result) == "resnet_graph.%s: error: Unknown command line flag 'nosuch'; see python -m " \
                                    "resnet_graph.%s --help" % (command, command), off
    bad = run_cli(command, '--help=maybe', timeout=60)
    assert only_line(bad) == 'resnet_graph.%s: error: --help=maybe is not true or false: give --help or --nohelp; ' \
                             'see python -m resnet_graph.%s --help' % (command, command)


@pytest.mark.parametrize('command, args, message', [
    ('plot', ['--model_dir', 'run', '--out', ''], "--out '' names no file; give the PNG file to write"),
    ('export', ['--model_dir', 'run', '--format', 'frozen_graph', '--out', ' '],
     "--out ' ' names no file; give where to write the frozen_graph"),
    ('import_checkpoint', ['--variant', 'official_v1', '--model_dir', 'new', '--checkpoint', ' '],
     "--checkpoint ' ' names no checkpoint; give the checkpoint path without .index (PREFIX)"),
    ('import_checkpoint', ['--variant', 'official_v1', '--model_dir', 'new', '--checkpoint', ''],
     "--checkpoint '' names no checkpoint; give the checkpoint path without .index (PREFIX)"),
])
def test_a_blank_file_flag_is_named_and_writes_nothing(tmp_path, command, args, message):
    # export --out ' ' wrote a file named ' '; the others named '' as a path that does not exist
    result = run_cli(command, *args, cwd=tmp_path, timeout=120)
    assert only_line(result) == 'resnet_graph.%s: error: %s' % (command, message)
    assert os.listdir(tmp_path) == []


# ---- byte positions past a read chunk ----------------------------------------------------------------------------

BOM = b'\xef\xbb\xbf'


def test_a_manifest_not_utf8_names_the_byte_from_the_file_s_start(tmp_path):
    # Past the first 8 KB: the position counted from the text reader's chunk, not from the file's start
    from resnet_graph.data.files import _read_manifest
    from resnet_graph.errors import UsageError
    head = b'path,label\n' + b''.join(b'c0/%d.png,0\n' % i for i in range(1000))
    path = tmp_path / 'train.csv'
    path.write_bytes(BOM + head + b'caf\xe9.png,0\n')
    with pytest.raises(UsageError) as raised:
        _read_manifest(str(path))
    assert str(raised.value) == ('%s is not UTF-8 text (byte %d: invalid continuation byte); save the manifest as '
                                 'UTF-8 CSV of path,label rows' % (path, len(BOM) + len(head) + 3))


def test_a_manifest_behind_a_bom_has_its_header_read(tmp_path):
    from resnet_graph.data.files import _read_manifest
    path = tmp_path / 'train.csv'
    (tmp_path / 'c0').mkdir()
    (tmp_path / 'c0' / '0.png').write_bytes(b'')  # never read: the manifest lists it
    path.write_bytes(BOM + b'path,label\nc0/0.png,0\n')
    assert [(number, label) for number, _, label in _read_manifest(str(path))] == [(2, '0')]


def test_a_flag_file_not_utf8_names_the_byte_from_the_file_s_start(tmp_path):
    from resnet_graph import flagfiles
    from resnet_graph.errors import UsageError
    head = b''.join(b'# comment line %d\n' % i for i in range(1000))
    path = tmp_path / 'big.flags'
    path.write_bytes(BOM + head + b'--labels=caf\xe9\n')
    with pytest.raises(UsageError) as raised:
        flagfiles.read(str(path))
    assert str(raised.value) == ('--flagfile %s is not UTF-8 text (byte %d: invalid continuation byte); give a text '
                                 'file of --flag=value lines' % (path, len(BOM) + len(head) + 12))


# ---- libjpeg's own lines in the training stream -------------------------------------------------------------------

def damaged_jpeg(seed):
    """A 64x64 JPEG with a restart marker written over its scan: it decodes, and libjpeg prints 'Corrupt JPEG data:
    premature end of data segment' on stderr itself."""
    import io
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:64, 0:64]
    pixels = np.stack([x * 4, y * 4, (x + y + seed) * 7 % 256], -1).astype(np.uint8)
    data = io.BytesIO()
    Image.fromarray(pixels).save(data, 'JPEG', quality=90)
    data = bytearray(data.getvalue())
    data[len(data) * 3 // 5:len(data) * 3 // 5 + 2] = b'\xff\xd4'
    return bytes(data)


@pytest.mark.slow
def test_a_streamed_tfrecord_of_damaged_jpegs_prints_no_libjpeg_line(tmp_path):
    from test_tfrecord_stream import write_records
    (tmp_path / 'data').mkdir()
    write_records(tmp_path / 'data' / 'train-00000-of-00001', [(damaged_jpeg(r), r % 2) for r in range(8)])
    write_records(tmp_path / 'data' / 'validation-00000-of-00001', [(damaged_jpeg(r), r % 2) for r in range(2)])
    result = run_cli('train', '--dataset', 'tfrecord', '--data_dir', tmp_path / 'data', '--validation_fraction', 0.25,
                     '--depth', 8, '--image_size', 8, '--batch_size', 2, '--epochs', 1, '--model_dir', tmp_path / 'run')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == '' and 'step 3/3' in result.stdout, result.stderr


# ---- siblings -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('command, args, message', [
    ('train', ['--dataset', 'csv', '--data_dir', ' ', '--model_dir', 'run'], "--data_dir ' ' names no directory; give "
     "the data set's directory (or a manifest .csv), or leave the flag out for digits"),
    ('import_keras', ['--model', 'resnet50', '--weights', ' ', '--model_dir', 'new'], "--weights ' ' names no file; "
     "give a .keras, .h5 or .weights.h5 file of keras.applications.ResNet50"),
    ('import_keras', ['--weights', 'w.h5', '--model_dir', 'new'], '--model is required: <resnet50|resnet101|'
     'resnet152>: Which keras.applications ResNet the file holds.; see python -m resnet_graph.import_keras --help'),
    ('import_checkpoint', ['--checkpoint', 'x', '--model_dir', 'new'], '--variant is required: <slim_v1|slim_v2|'
     'official_v1|official_v2>: The family of the checkpoint: TF-Slim resnet_v1/v2 or tensorflow/models official r1 '
     'v1.5/v2.; see python -m resnet_graph.import_checkpoint --help'),
])
def test_a_blank_or_missing_input_is_named(tmp_path, command, args, message):
    # they said "no manifest in :", "--weights is not a file", "flag --model=None: Flag --model must have a value
    # other than None."
    result = run_cli(command, *args, cwd=tmp_path, timeout=120)
    assert only_line(result) == 'resnet_graph.%s: error: %s' % (command, message)
    assert os.listdir(tmp_path) == []


def test_a_blank_labels_file_is_named():
    from resnet_graph.errors import UsageError
    from resnet_graph.serving import imported
    with pytest.raises(UsageError) as raised:
        imported.class_names(10, '')
    assert str(raised.value) == "--labels '' names no file; give a text file of class names, one a line"
