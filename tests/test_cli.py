"""train / evaluate / predict end to end through their command lines, in temporary directories."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import config
from conftest import ROOT, SMALL, TINY, error_lines, run_cli
from resnet_graph import cli
from resnet_graph.fastconv import cpu

pytestmark = pytest.mark.slow  # end-to-end training, evaluation, prediction and export runs


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One tiny run shared by the evaluate/predict tests: (model_dir, train stdout)."""
    model_dir = tmp_path_factory.mktemp('run') / 'r18'
    result = run_cli('train', *TINY, '--model_dir', model_dir, '--max_steps', 24, '--eval_every', 8)
    assert result.returncode == 0, result.stderr
    return model_dir, result.stdout


def test_train_writes_a_complete_run_directory(trained):
    model_dir, out = trained
    names = set(os.listdir(model_dir))
    assert {'config.json', 'best.json', 'best', 'train', 'eval', 'checkpoint', 'model.ckpt-24.index'} <= names
    cfg = json.loads((model_dir / 'config.json').read_text())
    assert (cfg['depth'], cfg['image_size'], cfg['num_classes'], cfg['channels']) == (18, 16, 10, 1)
    best = json.loads((model_dir / 'best.json').read_text())
    assert best['step'] in (8, 16, 24) and 0 <= best['validation_accuracy'] <= 1
    assert os.path.exists(best['checkpoint'] + '.index')
    assert any(f.startswith('events.out.tfevents') for f in os.listdir(model_dir / 'train'))
    assert any(f.startswith('events.out.tfevents') for f in os.listdir(model_dir / 'eval'))
    assert out.count('eval step') == 3
    assert 'step 24/24' in out and 'examples/sec' in out and 'left' in out
    assert 'best validation accuracy %.4f at step %d' % (best['validation_accuracy'], best['step']) in out
    assert 'tensorboard --logdir' in out


def test_evaluate_reports_the_test_accuracy_the_trainer_printed(trained):
    model_dir, out = trained
    result = run_cli('evaluate', '--model_dir', model_dir, '--json')
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics['images'] == 269 and metrics['split'] == 'test'
    assert 'test accuracy of the best checkpoint: %.4f' % metrics['accuracy'] in out
    assert metrics['accuracy'] <= metrics['top5'] <= 1
    val = json.loads(run_cli('evaluate', '--model_dir', model_dir, '--split', 'validation', '--json').stdout)
    best = json.loads((model_dir / 'best.json').read_text())
    assert val['accuracy'] == pytest.approx(best['validation_accuracy'], abs=1e-6)
    text = run_cli('evaluate', '--model_dir', model_dir, '--checkpoint', 'latest')
    assert text.returncode == 0 and 'model.ckpt-24' in text.stdout and 'top-1' in text.stdout


def test_predict_answers_each_file_and_reports_the_bad_one(trained, tmp_path):
    from PIL import Image
    from data_loader import DataLoader
    from resnet_graph.serving.inference import RestoredRun
    model_dir, _ = trained
    loader = DataLoader()
    ids = loader.test_ids[:2]
    png = tmp_path / 'digit.png'
    Image.fromarray((loader.source.images[ids[0], :, :, 0] * 255).round().astype(np.uint8)).save(png)
    npy = tmp_path / 'digit.npy'
    np.save(npy, loader.source.images[ids[1]])
    bad = tmp_path / 'notes.png'
    bad.write_text('not an image')
    result = run_cli('predict', '--model_dir', model_dir, '--json', '--top_k', 3, png, bad, npy)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ['resnet_graph.predict: error: %s: not a readable PNG, JPEG, GIF, BMP or WebP '
                                          'image (Unknown image file format. One of JPEG, JPEG XL, PNG, GIF, BMP, '
                                          'WebP required.)' % bad]
    answers = json.loads(result.stdout)
    assert [a['file'] for a in answers] == [str(png), str(bad), str(npy)]
    restored = RestoredRun(str(model_dir))
    expected = restored.session.run(restored.model.probabilities,
                                    {restored.model.input_x: restored.loader.get_batch_data(ids)[0]})
    restored.close()
    for answer, probs in ((answers[0], expected[0]), (answers[2], expected[1])):
        assert len(answer['top_k']) == 3
        assert answer['top_k'][0]['class_id'] == int(np.argmax(probs))
        tolerance = 1e-5 if answer['file'].endswith('.npy') else 2e-2  # the PNG is quantised to 8 bits
        assert answer['top_k'][0]['probability'] == pytest.approx(float(probs.max()), abs=tolerance)
    text = run_cli('predict', '--model_dir', model_dir, npy)
    assert text.returncode == 0 and text.stdout.startswith('%s: ' % npy)


def test_resume_refuses_another_architecture(trained):
    model_dir, _ = trained
    result = run_cli('train', '--model_dir', model_dir, '--depth', 34)
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and 'depth: saved 18, asked 34' in lines[0] and 'Traceback' not in result.stderr


def test_finished_run_resumes_to_the_same_step(trained):
    model_dir, _ = trained
    result = run_cli('train', '--model_dir', model_dir)
    assert result.returncode == 0, result.stderr
    assert 'resuming from' in result.stdout and 'at step 24' in result.stdout
    assert 'step 24/24' not in result.stdout  # nothing left to train
    assert 'best validation accuracy' in result.stdout


@pytest.mark.parametrize('signum,code,resume', [(signal.SIGTERM, 0, True), (signal.SIGINT, 130, False)])
def test_a_signal_saves_and_the_same_command_finishes_the_run(signum, code, resume, tmp_path):
    """Both signals save and exit with their code; the resume after one is the same for both (checked once)."""
    model_dir = tmp_path / 'run'
    args = ['-m', 'resnet_graph.train'] + SMALL + ['--model_dir', str(model_dir), '--max_steps', 60,
                                                  '--eval_every', 20]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    proc = subprocess.Popen([sys.executable] + [str(a) for a in args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith('eval step 20'):
            proc.send_signal(signum)
            break
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert 'stopped by signal %d' % signum in rest and 'tensorboard --logdir %s' % model_dir in rest
    best = json.loads((model_dir / 'best.json').read_text())
    stopped_at = int(rest.split('stopped by signal %d at step ' % signum)[1].split(':')[0])
    assert 20 <= stopped_at < 60 and best['step'] == 20
    assert os.path.exists(model_dir / ('model.ckpt-%d.index' % stopped_at))
    if not resume:
        return
    result = run_cli('train', '--model_dir', model_dir)
    assert result.returncode == 0, result.stderr
    assert 'resuming from' in result.stdout and 'at step %d' % stopped_at in result.stdout
    assert 'step 60/60' in result.stdout and 'eval step 60' in result.stdout
    final = json.loads((model_dir / 'best.json').read_text())
    assert final['step'] in (20, 40, 60)
    assert final['validation_accuracy'] >= best['validation_accuracy']
    assert os.path.exists(model_dir / 'model.ckpt-60.index')


@pytest.mark.parametrize('module,args,message', [
    ('train', ['--depth', 7], '--depth 7 is not supported; valid depths: 18, 34, 50, 101, 152'),
    ('train', ['--depth', 'abc'], '--depth=abc is not an integer'),
    ('train', ['--batch_size', 0], '--batch_size must be at least 1, got 0'),
    ('train', ['--learning_rate', -1], '--learning_rate must be positive, got -1.0'),
    ('train', ['--dataset', 'imagenet42'], "--dataset 'imagenet42' is unknown"),
    ('train', ['--no_such_flag'], 'no_such_flag'),
    ('evaluate', [], '--model_dir is required'),
    ('evaluate', ['--model_dir', 'missing_dir'], 'missing_dir is not a run directory'),
    ('predict', ['--model_dir', 'missing_dir', 'x.png'], 'missing_dir is not a run directory'),
    ('predict', ['--model_dir', 'missing_dir'], 'no files given'),
])
def test_bad_input_gets_one_line_and_exit_code_2(module, args, message, tmp_path):
    result = run_cli(module, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert 'Traceback' not in result.stderr
    assert os.listdir(tmp_path) == []  # nothing created


# A command line's main after cli.run: prints TensorFlow's CPU allocator ('bfc' when its statistics count the
# tensor). The default allocator has no statistics: on some machines TensorFlow says so (ValueError), on others
# (AVX-512, oneDNN) it reports zeros.
ALLOCATOR_PROBE = '''
from resnet_graph import cli

def main(args):
    import tensorflow as tf
    with tf.compat.v1.Session() as sess:
        sess.run(tf.reduce_sum(tf.ones([64, 64])))
    try:
        peak = tf.config.experimental.get_memory_info('CPU:0')['peak']
    except ValueError:  # "Allocator stats not available"
        peak = None
    print('bfc' if peak and peak >= 64 * 64 * 4 else 'default' if not peak else 'bfc without the tensor')

cli.run('probe', main)
'''


AUTO_ALLOCATOR = 'default' if cpu.has_avx512() else 'bfc'  # config.CPU_BFC_ALLOCATOR 'auto' on this machine
OTHER_ALLOCATOR, OTHER_CHOICE = ('bfc', 'true') if AUTO_ALLOCATOR == 'default' else ('default', 'false')


@pytest.mark.parametrize('user_choice,allocator', [(None, AUTO_ALLOCATOR), (OTHER_CHOICE, OTHER_ALLOCATOR)])
def test_command_lines_pick_the_cpu_allocator_unless_the_user_chose(user_choice, allocator):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    env.pop('TF_CPU_ALLOCATOR_USE_BFC', None)
    if user_choice is not None:
        env['TF_CPU_ALLOCATOR_USE_BFC'] = user_choice
    result = subprocess.run([sys.executable, '-c', ALLOCATOR_PROBE], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == allocator


@pytest.mark.parametrize('setting,avx512,variable', [('auto', False, 'true'), ('auto', True, None),
                                                     ('on', True, 'true'), ('off', False, None)])
def test_the_allocator_setting_is_on_where_the_cpu_lacks_avx512(monkeypatch, setting, avx512, variable):
    monkeypatch.setenv(cli.ALLOCATOR_VARIABLE, 'unset by the test')  # so that undo removes what cli.run sets
    monkeypatch.delenv(cli.ALLOCATOR_VARIABLE)
    monkeypatch.setattr(config, 'CPU_BFC_ALLOCATOR', setting)
    monkeypatch.setattr(cpu, 'has_avx512', lambda: avx512)
    with pytest.raises(SystemExit) as exit_:
        cli.run('probe', lambda args: None, ['probe'])
    assert exit_.value.code == 0
    assert os.environ.get(cli.ALLOCATOR_VARIABLE) == variable


@pytest.mark.parametrize('name', ['CPU_BFC_ALLOCATOR', 'FORWARD_CONV_GRADIENTS'])
def test_a_bad_cpu_setting_in_config_is_one_line_and_exit_2(monkeypatch, capsys, name):
    monkeypatch.setattr(config, name, 'yes')
    with pytest.raises(SystemExit) as exit_:
        cli.run('probe', lambda args: pytest.fail('main ran'), ['probe'])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("probe: error: config.%s is 'yes': set it to one of 'auto', 'on', 'off' in "
                                       "config.py\n" % name)


LIBRARY_PACKAGES = ('nets', 'fastconv', 'training', 'data', 'serving', 'bench')


def test_the_library_never_loads_the_command_line_modules():
    # Library users import the model, the loop, the data and serving without the command lines' plumbing:
    # every module of the library's packages, and none of resnet_graph's top-level command modules loads.
    package = os.path.join(ROOT, 'resnet_graph')
    commands = sorted('resnet_graph.' + name[:-3] for name in os.listdir(package)
                      if name.endswith('.py') and name not in ('__init__.py', 'errors.py'))
    assert {'resnet_graph.cli', 'resnet_graph.flags', 'resnet_graph.cluster', 'resnet_graph.train'} <= set(commands)
    library = sorted('resnet_graph.%s.%s' % (sub, name[:-3]) for sub in LIBRARY_PACKAGES
                     for name in os.listdir(os.path.join(package, sub)) if name.endswith('.py'))
    assert {'resnet_graph.training.towers', 'resnet_graph.training.distributed'} <= set(library)
    code = ('import importlib, sys\nfor name in %r: importlib.import_module(name)\n'
            'print(sorted(m for m in %r if m in sys.modules))' % (library + ['data_loader'], commands))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    result = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == '[]', result.stdout


def test_no_library_module_imports_a_command_line_module_even_lazily():
    # The import statements themselves, inside functions too (a lazy import loads the module when called).
    import ast
    package = os.path.join(ROOT, 'resnet_graph')
    commands = {name[:-3] for name in os.listdir(package)
                if name.endswith('.py') and name not in ('__init__.py', 'errors.py')}
    paths = [os.path.join(package, sub, name) for sub in LIBRARY_PACKAGES
             for name in os.listdir(os.path.join(package, sub)) if name.endswith('.py')]
    found = []
    for path in paths + [os.path.join(ROOT, 'data_loader.py'), os.path.join(ROOT, 'config.py')]:
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == 'resnet_graph':
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('resnet_graph.'):
                names = [node.module.split('.')[1]]
            elif isinstance(node, ast.Import):
                names = [alias.name.split('.')[1] for alias in node.names if alias.name.startswith('resnet_graph.')]
            else:
                continue
            found += ['%s:%d %s' % (os.path.relpath(path, ROOT), node.lineno, n) for n in names if n in commands]
    assert found == []
