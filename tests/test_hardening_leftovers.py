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
