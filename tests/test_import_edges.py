"""Imports as a careless or hostile user runs them: checkpoints holding more than the network (optimizer slots,
moving-average shadows), paths that are not checkpoints, raw uint8 images into ResNet.from_run, a run's summary,
and evaluate's JSON on a 1000-class run."""
import codecs
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import error_lines, run_cli
from test_imported_runs import official_18_checkpoint
from resnet_graph.errors import UsageError
from resnet_graph.serving import imported

v1 = tf.compat.v1
ERROR = 'resnet_graph.import_checkpoint: error: '


def import_18(checkpoint, run, *args):
    return run_cli('import_checkpoint', '--variant', 'official_v1', '--depth', '18', '--checkpoint', checkpoint,
                   '--model_dir', run, '--image_size', '32', *args)


@pytest.fixture(scope='module')
def official_18(tmp_path_factory):
    """(prefix, values) of a 1001-class official_v1 ResNet-18 checkpoint."""
    root = tmp_path_factory.mktemp('edges18')
    return str(root / 'model.ckpt-9'), official_18_checkpoint(root / 'model.ckpt-9', 1001, 1)


@pytest.fixture(scope='module')
def run18(official_18, tmp_path_factory):
    """The run directory imported from ``official_18``."""
    run = tmp_path_factory.mktemp('run18') / 'run'
    result = import_18(official_18[0], run)
    assert result.returncode == 0, result.stderr[-2000:]
    return str(run)


def write_with_extras(prefix, values):
    """A checkpoint of ``values`` plus what training checkpoints hold besides the network: a Momentum slot and an
    ExponentialMovingAverage shadow (the value + 1) of every variable, global_step and an auxiliary head.
    Returns the shadows' values by the network's names."""
    shadows = {name: value + 1.0 for name, value in values.items()}
    with tf.Graph().as_default(), v1.Session() as sess:
        variables = [v1.Variable(value, name=name) for name, value in values.items()]
        variables += [v1.Variable(np.zeros_like(value), name=name + '/Momentum') for name, value in values.items()]
        variables += [v1.Variable(shadows[name], name=name + '/ExponentialMovingAverage') for name in values]
        variables += [v1.Variable(np.int64(5), name='global_step'),
                      v1.Variable(np.zeros([4, 1001], np.float32), name='resnet_model/AuxLogits/weights')]
        sess.run(v1.global_variables_initializer())
        v1.train.Saver(variables).save(sess, str(prefix), write_meta_graph=False)
    return shadows


@pytest.mark.slow
def test_left_out_variables_are_grouped_and_shadows_taken(official_18, tmp_path):
    """The command's parts on their own (no subprocess): the left-out line, and the shadows --moving_averages takes."""
    from resnet_graph.import_checkpoint import left_out_line, take_averages
    _, values = official_18
    prefix = str(tmp_path / 'model.ckpt-5')
    shadows = write_with_extras(prefix, values)
    weights, taken = take_averages(prefix, values)
    assert sorted(taken) == sorted(values)
    for name in values:
        np.testing.assert_array_equal(weights[name], shadows[name], err_msg=name)
    line = left_out_line(prefix, set(values))
    assert line.startswith('left out %d checkpoint variables the network does not use: %d optimizer slots'
                           % (2 * len(values) + 2, len(values))), line
    assert line.endswith('global_step, 1 other (resnet_model/AuxLogits/weights)')
    assert left_out_line(prefix, set(values) | {n + '/ExponentialMovingAverage' for n in values} | {'global_step'}) \
        .endswith('does not use: %d optimizer slots (e.g. resnet_model/batch_normalization/beta/Momentum), 1 other '
                  '(resnet_model/AuxLogits/weights)' % len(values))


@pytest.mark.slow
def test_variables_the_network_does_not_use_are_counted_and_named(official_18, tmp_path):
    _, values = official_18
    shadows = write_with_extras(tmp_path / 'train' / 'model.ckpt-5', values)
    prefix = str(tmp_path / 'train' / 'model.ckpt-5')
    count = len(values)
    result = import_18(prefix, tmp_path / 'run')
    assert result.returncode == 0, result.stderr[-2000:]
    assert ('left out %d checkpoint variables the network does not use: %d optimizer slots (e.g. '
            'resnet_model/batch_normalization/beta/Momentum), %d moving-average shadows (--moving_averages imports '
            'them instead of the raw weights), global_step, 1 other (resnet_model/AuxLogits/weights)'
            % (2 * count + 2, count, count)) in result.stdout.splitlines()
    reader = tf.train.load_checkpoint(str(tmp_path / 'run' / 'best' / 'model.ckpt-0'))
    name = 'resnet_model/conv2d_7/kernel'
    np.testing.assert_array_equal(reader.get_tensor(name), values[name])  # the raw weights by default

    result = import_18(prefix, tmp_path / 'ema', '--moving_averages')
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'moving-average shadows' not in result.stdout and 'imported the moving averages' in result.stdout
    assert ('left out %d checkpoint variables the network does not use: %d raw values replaced by their moving '
            'averages, %d optimizer slots (e.g. resnet_model/batch_normalization/beta/Momentum), global_step, 1 other '
            '(resnet_model/AuxLogits/weights)' % (2 * count + 2, count, count)) in result.stdout.splitlines()
    reader = tf.train.load_checkpoint(str(tmp_path / 'ema' / 'best' / 'model.ckpt-0'))
    for name in (name, 'resnet_model/batch_normalization/moving_mean', 'resnet_model/dense/bias'):
        np.testing.assert_array_equal(reader.get_tensor(name), shadows[name], err_msg=name)


@pytest.mark.slow
def test_moving_averages_of_a_checkpoint_without_them_is_one_line(official_18, tmp_path):
    prefix, _ = official_18
    result = import_18(prefix, tmp_path / 'run', '--moving_averages')
    assert result.returncode == 2
    assert error_lines(result.stderr) == [ERROR + '--moving_averages: checkpoint %s holds no ExponentialMovingAverage '
                                          'shadows (it was trained without them); import it without the flag' % prefix]
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_a_clean_checkpoint_says_nothing_left_out(official_18, tmp_path):
    result = import_18(official_18[0], tmp_path / 'run')
    assert result.returncode == 0 and 'left out' not in result.stdout


def _saved_model(path, with_variables=True):
    os.makedirs(os.path.join(path, 'variables'))
    open(os.path.join(path, 'saved_model.pb'), 'wb').write(b'\x08\x01')
    if with_variables:
        open(os.path.join(path, 'variables', 'variables.index'), 'wb').write(b'')


@pytest.mark.parametrize('kind', ['keras', 'h5', 'tarball', 'run', 'run_best', 'saved_model_parent',
                                  'frozen_saved_model', 'data_without_index', 'png', 'state_file_of_nothing'])
def test_a_path_that_is_not_a_checkpoint_says_what_it_is(tmp_path, kind):
    path = tmp_path / 'given'
    if kind == 'keras':
        path = tmp_path / 'resnet50.keras'
        path.write_bytes(b'PK\x03\x04' + b'\0' * 64)
        message = ('--checkpoint %s is a Keras archive (.keras), not a TensorFlow checkpoint: import it with python '
                   '-m resnet_graph.import_keras --model resnet50|resnet101|resnet152 --weights %s' % (path, path))
    elif kind == 'h5':
        path = tmp_path / 'weights.ckpt'  # an HDF5 file under any name
        path.write_bytes(b'\x89HDF\r\n\x1a\n' + b'\0' * 64)
        message = ('--checkpoint %s is a Keras HDF5 file (.h5), not a TensorFlow checkpoint: import it with python '
                   '-m resnet_graph.import_keras --model resnet50|resnet101|resnet152 --weights %s' % (path, path))
    elif kind == 'tarball':
        path = tmp_path / 'resnet_v1_50_2016_08_28.tar.gz'
        path.write_bytes(b'\x1f\x8b\x08' + b'\0' * 64)
        message = ('--checkpoint %s is a gzip archive, not a TensorFlow checkpoint: extract it (a model-zoo .tar.gz: '
                   'tar xzf) and give the checkpoint inside' % path)
    elif kind in ('run', 'run_best'):
        (path / 'best').mkdir(parents=True)
        (path / 'config.json').write_text('{}')
        (path / 'best' / 'model.ckpt-3.index').write_bytes(b'')
        run, path = path, path / 'best' if kind == 'run_best' else path
        message = ('--checkpoint %s is a resnet_graph run directory (%s): it needs no import; evaluate, predict and '
                   'export take it as it is, and train --warm_start_from %s starts a new run from its weights'
                   % (path, run / 'config.json', run))
    elif kind == 'saved_model_parent':
        for stamp in ('1538687283', '1538687999'):
            _saved_model(str(path / stamp))
        message = ('--checkpoint %s holds SavedModels in subdirectories (1538687283, 1538687999): give one, e.g. '
                   '--checkpoint %s' % (path, path / '1538687999'))
    elif kind == 'frozen_saved_model':
        _saved_model(str(path), with_variables=False)
        message = ('--checkpoint %s is a SavedModel without variables (variables/variables.index): its weights are '
                   'not a checkpoint; give the checkpoint it was exported from' % path)
    elif kind in ('png', 'state_file_of_nothing'):
        path = tmp_path / ('cat.png' if kind == 'png' else 'checkpoint')
        path.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 64 if kind == 'png' else b'# no checkpoint named\n')
        message = ('--checkpoint %s is not a TensorFlow checkpoint (no *.index file beside it, and not a V1 '
                   'checkpoint file); give the checkpoint prefix, e.g. model.ckpt-12345' % path)
    else:
        path.mkdir()
        (path / 'model.ckpt-9.data-00000-of-00001').write_bytes(b'\0')
        path = path / 'model.ckpt-9'
        message = ('--checkpoint %s: %s.data-00000-of-00001 is there but not its index %s.index; copy both files'
                   % (path, path, path))
    result = import_18(path, tmp_path / 'out')
    assert result.returncode == 2
    assert error_lines(result.stderr) == [ERROR + message]
    assert not (tmp_path / 'out').exists()


def test_a_labels_file_that_is_not_utf8_is_one_line(official_18, tmp_path):
    labels = tmp_path / 'labels.txt'
    labels.write_bytes(b'cat\n\xff\xfedog\n')
    result = import_18(official_18[0], tmp_path / 'run', '--labels', labels)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [ERROR + '--labels %s is not UTF-8 text (byte 4: invalid start byte); save '
                                          'it as UTF-8, one class name a line' % labels]


def from_run_logits(run, images):
    """Logits of the run's network on images() (made in the network's graph)."""
    from resnet_graph.nets.model import ResNet
    with tf.Graph().as_default():
        net = ResNet.from_run(run, input_tensor=images())
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return sess.run(net.logits)


@pytest.mark.slow
def test_from_run_takes_raw_uint8_images(run18):
    pixels = np.random.RandomState(3).randint(0, 256, (2, 40, 40, 3)).astype(np.uint8)
    expected = from_run_logits(run18, lambda: pixels.astype(np.float32))
    np.testing.assert_allclose(from_run_logits(run18, lambda: tf.constant(pixels)), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(from_run_logits(run18, lambda: pixels), expected, rtol=1e-5, atol=1e-4)  # numpy


@pytest.mark.parametrize('images, message', [
    (lambda: tf.zeros([1, 40, 40, 3], tf.int32), 'got int32'),
    (lambda: tf.zeros([1, 40, 40, 3], tf.uint16), 'got uint16'),
    (lambda: tf.constant(['a']), 'got string'),
    (lambda: tf.zeros([40, 40, 3], tf.uint8), 'got shape [40, 40, 3]'),
    (lambda: tf.zeros([2, 40, 40, 1], tf.uint8), 'got shape [2, 40, 40, 1]'),
])
def test_from_run_names_the_input_it_expects(run18, images, message):
    from resnet_graph.errors import UsageError
    from resnet_graph.nets.model import ResNet
    with tf.Graph().as_default():
        with pytest.raises(UsageError) as raised:
            ResNet.from_run(run18, input_tensor=images())
    assert str(raised.value) == ('input_tensor of %s must be raw images [N, h, w, 3], uint8 or float with values '
                                 '0..255; %s' % (run18, message))


@pytest.mark.slow
def test_summary_of_a_run(run18):
    from resnet_graph.nets.counts import summarize
    before = sorted((p, os.stat(os.path.join(d, p)).st_mtime_ns) for d, _, files in os.walk(run18) for p in files)
    result = run_cli('summary', '--model_dir', run18, '--json')
    assert result.returncode == 0, result.stderr[-2000:]
    got = json.loads(result.stdout)
    expected = summarize(18, 32, 3, 1001, variant='official_v1', architecture='imagenet')
    assert (got['depth'], got['image_size'], got['channels'], got['num_classes'], got['model_dir']) == (
        18, 32, 3, 1001, run18)
    assert got['params'] == expected['params'] and got['spec']['variant'] == 'official_v1'
    text = run_cli('summary', '--model_dir', run18)
    assert text.returncode == 0
    assert text.stdout.splitlines()[0] == ('run %s: imported from tensorflow/models official r1 ResNet v1.5'
                                           % run18)
    assert 'input 32x32x3, 1001 classes' in text.stdout.splitlines()[1]
    after = sorted((p, os.stat(os.path.join(d, p)).st_mtime_ns) for d, _, files in os.walk(run18) for p in files)
    assert after == before  # read-only: nothing written, not even a lock


@pytest.mark.parametrize('case', ['missing', 'damaged', 'with_depth'])
def test_summary_of_a_run_refuses_in_one_line(tmp_path, case, run18):
    run = tmp_path / 'run'
    args = []
    if case == 'missing':
        message = '%s is not a run directory (no config.json); train one with python -m resnet_graph.train ' \
                  '--model_dir %s' % (run, run)
    elif case == 'damaged':
        run.mkdir()
        (run / 'config.json').write_text('{"depth": ')
        message = 'config.json'
    else:
        run, args = run18, ['--depth', '50']
        message = ('--model_dir takes the network from %s; drop --depth' % os.path.join(run18, 'config.json'))
    result = run_cli('summary', '--model_dir', run, *args)
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert line.startswith('resnet_graph.summary: error: ') and message in line, line
    assert case != 'missing' or not run.exists()


@pytest.mark.slow
def test_evaluate_json_of_a_1000_class_run_leaves_the_matrix_out(tmp_path):
    """A 1000-class network on a 1000-class data set (two images, labels 0 and 999): no 1000x1000 matrix in the
    JSON unless --confusion asks for it."""
    from PIL import Image
    official_18_checkpoint(tmp_path / 'model.ckpt-1', 1000, 999)
    run = tmp_path / 'run'
    result = import_18(tmp_path / 'model.ckpt-1', run, '--num_classes', '1000')
    assert result.returncode == 0, result.stderr[-2000:]
    data = tmp_path / 'data'
    data.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(str(data / 'a.png'))
    for split in ('train', 'val', 'test'):
        (data / ('%s.csv' % split)).write_text('a.png,0\na.png,999\n')
    args = ['evaluate', '--model_dir', run, '--dataset', 'csv', '--data_dir', data, '--json']
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)
    assert 'confusion' not in metrics and metrics['accuracy'] == 0.5 and len(result.stdout) < 2000
    full = json.loads(run_cli(*(args + ['--confusion'])).stdout)
    confusion = np.array(full['confusion'])
    assert confusion.shape == (1000, 1000) and confusion[0, 999] == 1 and confusion[999, 999] == 1


@pytest.mark.parametrize('kind', ['index', 'data', 'prefix', 'run'])
def test_import_keras_given_a_checkpoint_or_run_says_which_command(official_18, run18, tmp_path, kind):
    prefix, _ = official_18
    given = {'index': prefix + '.index', 'data': prefix + '.data-00000-of-00001', 'prefix': prefix, 'run': run18}[kind]
    result = run_cli('import_keras', '--model', 'resnet50', '--weights', given, '--model_dir', tmp_path / 'out')
    assert result.returncode == 2
    if kind == 'run':
        message = ('--weights %s is a resnet_graph run directory (%s): it needs no import; evaluate, predict and '
                   'export take it as it is, and train --warm_start_from %s starts a new run from its weights'
                   % (run18, os.path.join(run18, 'config.json'), run18))
    else:
        message = ('--weights %s is a TensorFlow checkpoint (%s.index), not a Keras file: import it with python -m '
                   'resnet_graph.import_checkpoint --variant slim_v1|slim_v2|official_v1|official_v2 --checkpoint %s'
                   % (given, prefix, prefix))
    assert error_lines(result.stderr) == ['resnet_graph.import_keras: error: ' + message]
    assert not (tmp_path / 'out').exists()


def test_from_run_takes_a_placeholder_of_unknown_shape(run18):
    from resnet_graph.nets.model import ResNet
    pixels = np.random.RandomState(4).randint(0, 256, (1, 40, 40, 3)).astype(np.uint8)
    with tf.Graph().as_default():
        images = v1.placeholder(tf.uint8)
        net = ResNet.from_run(run18, input_tensor=images)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            got = sess.run(net.logits, {images: pixels})
    np.testing.assert_allclose(got, from_run_logits(run18, lambda: pixels), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_classes=5), 'ResNet.from_run builds the network of %s/config.json: drop num_classes (ResNet(...) builds '
                          'another network; weights= restores a run into it)'),
    (dict(weights='/x', depth=50), 'ResNet.from_run builds the network of %s/config.json: drop depth, weights '
                                   '(ResNet(...) builds another network; weights= restores a run into it)'),
])
def test_from_run_refuses_what_the_run_fixes(run18, kwargs, message):
    from resnet_graph.errors import UsageError
    from resnet_graph.nets.model import ResNet
    with tf.Graph().as_default(), pytest.raises(UsageError) as raised:
        ResNet.from_run(run18, **kwargs)
    assert str(raised.value) == message % run18


def test_from_run_of_a_run_without_a_checkpoint(run18, tmp_path):
    import shutil
    from resnet_graph.errors import UsageError
    from resnet_graph.nets.model import ResNet
    run = tmp_path / 'run'
    run.mkdir()
    shutil.copy(os.path.join(run18, 'config.json'), str(run / 'config.json'))
    with tf.Graph().as_default(), pytest.raises(UsageError) as raised:
        ResNet.from_run(str(run))
    assert str(raised.value) == ('%s holds no checkpoint (a config.json alone: its training has not saved one yet); '
                                 'train it, or give a run that has one' % run)
    assert sorted(os.listdir(str(run))) == ['config.json']


@pytest.mark.parametrize('kind', ['best_folder', 'foreign_config'])
def test_an_import_never_replaces_a_users_files(official_18, tmp_path, kind):
    """A --model_dir that holds the user's own best/ folder or config.json (not a resnet_graph run's) is refused,
    and those files are left as they were."""
    target = tmp_path / 'project'
    target.mkdir()
    if kind == 'best_folder':
        (target / 'best').mkdir()
        mine = target / 'best' / 'notes.txt'
        message = ('--model_dir %s has a best/ folder that is not a run\'s (it holds notes.txt); choose a new '
                   'directory' % target)
    else:
        mine = target / 'config.json'
        message = ('--model_dir %s holds a config.json that is not a resnet_graph run\'s (%s is damaged: ' % (target,
                                                                                                           mine))
    mine.write_text('{"mine": true}')
    result = import_18(official_18[0], target)
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert line.startswith(ERROR + message), line
    assert mine.read_text() == '{"mine": true}'
    expected = [mine] + ([mine.parent] if kind == 'best_folder' else [])
    assert sorted(p.name for p in target.rglob('*')) == sorted(p.name for p in expected)


def one_variable_checkpoint(prefix, name):
    """A checkpoint holding one variable ``name`` (enough to name the family whose checkpoint it is)."""
    with tf.Graph().as_default(), v1.Session() as sess:
        variable = v1.Variable(np.zeros([1], np.float32), name=name)
        sess.run(variable.initializer)
        v1.train.Saver([variable]).save(sess, str(prefix), write_meta_graph=False)
    return str(prefix)


@pytest.mark.parametrize('held, variant, guess', [
    ('resnet_v2_50/conv1/weights', 'slim_v1', "its variables are TF-Slim resnet_v2_50's: --variant "
                                                             "slim_v2 --depth 50"),
    ('resnet_v1_101/conv1/weights', 'slim_v1', "its variables are TF-Slim resnet_v1_101's: --variant "
                                                              "slim_v1 --depth 101"),
    ('resnet_model/conv2d/kernel', 'slim_v2', "its variables are official r1's (resnet_model/): "
                                                             "--variant official_v1 or official_v2"),
    ('stem/conv/kernel', 'official_v1', 'it is a resnet_graph checkpoint: train --warm_start_from '
                                                       'takes it as it is'),
    ('layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE', 'official_v1',
     'it is a TF2 object-based checkpoint (tf.train.Checkpoint or a Keras SavedModel), not a TF1 name-based one: for '
     'a keras.applications model, save it as .keras or .h5 and use import_keras'),
])
def test_a_checkpoint_of_another_family_names_the_family(held, variant, guess):
    from resnet_graph.serving.imported import family_of
    assert family_of([held, 'global_step'], variant, 50) == guess


def test_a_checkpoint_of_the_family_asked_for_gets_no_guess():
    from resnet_graph.serving.imported import family_of
    assert family_of(['resnet_v1_50/conv1/weights'], 'slim_v1', 50) is None
    assert family_of(['resnet_model/conv2d/kernel'], 'official_v2', 34) is None


@pytest.mark.slow
def test_the_family_s_name_reaches_the_command_line(tmp_path):
    prefix = one_variable_checkpoint(tmp_path / 'model.ckpt', 'resnet_v2_50/conv1/weights')
    result = run_cli('import_checkpoint', '--variant', 'official_v1', '--depth', '18', '--checkpoint', prefix,
                     '--model_dir', tmp_path / 'run')
    assert result.returncode == 2
    assert error_lines(result.stderr) == [ERROR + "checkpoint %s has no variable resnet_model/conv2d/kernel: it is not "
                                          "this family and depth (its variables are TF-Slim resnet_v2_50's: --variant "
                                          "slim_v2 --depth 50)" % prefix]
    assert not (tmp_path / 'run').exists()


def test_evaluate_confusion_without_json_is_one_line(tmp_path):
    result = run_cli('evaluate', '--model_dir', tmp_path, '--confusion')
    assert result.returncode == 2
    assert error_lines(result.stderr) == ['resnet_graph.evaluate: error: --confusion adds the confusion matrix to '
                                          '--json\'s document; add --json']


@pytest.mark.slow
def test_a_savedmodel_exported_here_points_to_its_run(tmp_path):
    saved = tmp_path / 'exported'
    (saved / 'variables').mkdir(parents=True)
    (saved / 'saved_model.pb').write_bytes(b'\x08\x01')
    one_variable_checkpoint(saved / 'variables' / 'variables', 'stem/conv/kernel')
    result = run_cli('import_checkpoint', '--variant', 'official_v1', '--checkpoint', saved, '--model_dir',
                     tmp_path / 'run')
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert line.endswith(': it is not this family and depth (it is a SavedModel exported by resnet_graph: the run '
                         'it was exported from needs no import, and train --warm_start_from takes that run)'), line


def test_a_labels_file_saved_with_a_byte_order_mark_and_crlf(tmp_path):
    from resnet_graph.serving.imported import class_names
    labels = tmp_path / 'labels.txt'
    labels.write_bytes('\ufeffcat\r\ndog\r\n'.encode('utf-8'))
    assert class_names(2, str(labels)) == ['cat', 'dog']


def test_a_lone_step_is_left_out_in_the_singular(official_18, tmp_path):
    from resnet_graph.import_checkpoint import left_out_line
    _, values = official_18
    prefix = str(tmp_path / 'model.ckpt')
    with tf.Graph().as_default(), v1.Session() as sess:
        variables = [v1.Variable(value, name=name) for name, value in values.items()]
        variables.append(v1.Variable(np.int64(5), name='global_step'))
        sess.run(v1.global_variables_initializer())
        v1.train.Saver(variables).save(sess, prefix, write_meta_graph=False)
    assert left_out_line(prefix, set(values)) == 'left out 1 checkpoint variable the network does not use: global_step'


def test_the_checkpoint_state_file_resolves_to_the_checkpoint_it_names(official_18):
    """DIR/checkpoint (TensorFlow's state file, in every checkpoint folder) is taken as the checkpoint it names."""
    from resnet_graph.import_checkpoint import checkpoint_prefix
    prefix, _ = official_18
    state = os.path.join(os.path.dirname(prefix), 'checkpoint')
    assert os.path.isfile(state)
    assert checkpoint_prefix(state, 18) == prefix


@pytest.mark.parametrize('content', [b'', b'\x89PNG\r\n\x1a\n' + b'\0' * 64, b'cat\ndog\n'])
def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path, content):
    from resnet_graph.errors import UsageError
    from resnet_graph.import_checkpoint import checkpoint_prefix
    path = tmp_path / 'given.ckpt'
    path.write_bytes(content)
    with pytest.raises(UsageError) as raised:
        checkpoint_prefix(str(path), 18)
    assert str(raised.value) == '--checkpoint %s is not a TensorFlow checkpoint (no *.index file beside it, and ' \
        'not a V1 checkpoint file); give the checkpoint prefix, e.g. model.ckpt-12345' % path


def test_a_damaged_checkpoint_quotes_tensorflow_whole(tmp_path):
    """A damaged table (here a V1 file of junk ending in the table magic) keeps its message, TensorFlow's text uncut."""
    from resnet_graph.import_checkpoint import TABLE_MAGIC
    from resnet_graph.training.run_dir import checkpoint_problem
    path = tmp_path / ('a_long_directory_name_' * 4) / 'resnet_v1_50.ckpt'
    path.parent.mkdir()
    path.write_bytes(b'y' * 100 + TABLE_MAGIC)
    problem = checkpoint_problem(str(path))
    assert problem.startswith('its index or data file is cut short or damaged (Unable to open table file %s' % path)
    assert problem.endswith('restore operator?)'), problem  # TensorFlow's sentence whole, not cut mid-word


def test_raw_values_replaced_by_their_moving_averages_are_their_own_group(official_18, tmp_path):
    from resnet_graph.import_checkpoint import left_out_line
    _, values = official_18
    prefix = str(tmp_path / 'model.ckpt-5')
    write_with_extras(prefix, values)
    line = left_out_line(prefix, {n + '/ExponentialMovingAverage' for n in values} | {'global_step'},
                         replaced=set(values))
    assert line.endswith('does not use: %d raw values replaced by their moving averages, %d optimizer slots (e.g. '
                         'resnet_model/batch_normalization/beta/Momentum), 1 other (resnet_model/AuxLogits/weights)'
                         % (len(values), len(values))), line


def test_a_labels_file_with_a_blank_line_between_names_is_one_line(tmp_path):
    from resnet_graph.errors import UsageError
    from resnet_graph.serving.imported import class_names
    labels = tmp_path / 'labels.txt'
    labels.write_text('cat\n\ndog\nbird\n\n\n')
    with pytest.raises(UsageError) as raised:
        class_names(3, str(labels))
    assert str(raised.value) == ('--labels %s: line 2 is blank; give one class name a line (a blank line shifts '
                                 'every later name to the wrong class)' % labels)
    labels.write_text('cat\ndog\nbird\n\n\n')
    assert class_names(3, str(labels)) == ['cat', 'dog', 'bird']


def test_a_labels_file_with_a_duplicate_name_warns(tmp_path, capsys):
    from resnet_graph.serving.imported import class_names
    labels = tmp_path / 'labels.txt'
    labels.write_text('cat\ndog\ncat\ndog\n')
    assert class_names(4, str(labels)) == ['cat', 'dog', 'cat', 'dog']
    assert capsys.readouterr().err == ('resnet_graph: warning: --labels %s names cat twice (lines 1 and 3); '
                                       'predictions of either class will read the same\n' % labels)


def test_a_labels_file_not_utf8_names_the_byte_from_the_file_s_start(tmp_path):
    # Past the first 8 KB: the position must count from the file's start, not from a read chunk's.
    head = ''.join('class_%d\n' % i for i in range(1000)).encode()
    path = tmp_path / 'labels.txt'
    path.write_bytes(codecs.BOM_UTF8 + head + b'caf\xe9\n')
    with pytest.raises(UsageError, match=r'is not UTF-8 text \(byte %d: ' % (len(codecs.BOM_UTF8) + len(head) + 3)):
        imported.class_names(1001, str(path))
