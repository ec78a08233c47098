"""Imported runs used end to end as a user would: the family's default classes, evaluate --dataset, warm starts
from them, and the checkpoint files users actually hold (a directory, an .index path, a V1 file, a cut file)."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import error_lines, run_cli
from resnet_graph.nets.model import ResNet

v1 = tf.compat.v1
WINNER = 3  # the digit every image of the fixture's network is scored as


@pytest.mark.slow
@pytest.mark.parametrize('variant, depth, head, shape', [
    ('slim_v1', 50, 'resnet_v1_50/logits/weights', [1, 1, 2048, 1000]),
    ('slim_v2', 50, 'resnet_v2_50/logits/weights', [1, 1, 2048, 1001]),
    ('official_v1', 18, 'resnet_model/dense/kernel', [512, 1001]),
    ('official_v2', 18, 'resnet_model/dense/kernel', [512, 1001]),
    ('keras', 50, None, [2048, 1000]),
    ('standard', 18, 'head/dense/kernel', [512, 10]),
    ('legacy', 18, None, [512, 10]),
])
def test_an_omitted_num_classes_is_the_family_s(variant, depth, head, shape):
    with tf.Graph().as_default():
        model = ResNet(depth, height=32, width=32, channels=3, variant=variant)
        kernel = model.variables[-2]
        assert kernel.shape.as_list() == shape and model.num_classes == shape[-1]
        assert head is None or model.local_name(kernel) == head
        assert model.logits.shape.as_list() == [None, shape[-1]]
    for explicit in (dict(num_classes=7), dict(classes=7)):  # an explicit width still wins
        with tf.Graph().as_default():
            assert ResNet(depth, height=32, width=32, channels=3, variant=variant, **explicit).num_classes == 7


def test_official_basic_blocks_project_in_every_first_block():
    """official r1's block_layer hands every stage's first block the projection, even stage 1's at stride 1."""
    with tf.Graph().as_default():
        model = ResNet(18, 1001, 32, 32, 3, variant='official_v1')
        shapes = {model.local_name(v): v.shape.as_list() for v in model.variables}
    conv = lambda i: shapes['resnet_model/conv2d%s/kernel' % ('_%d' % i if i else '')]  # noqa: E731
    assert [conv(i) for i in range(4)] == [[7, 7, 3, 64], [1, 1, 64, 64], [3, 3, 64, 64], [3, 3, 64, 64]]
    assert conv(6) == [1, 1, 64, 128] and conv(20) == [3, 3, 512, 512] and 'resnet_model/conv2d_21/kernel' not in shapes
    assert shapes['resnet_model/batch_normalization_20/gamma'] == [512] and shapes['resnet_model/dense/bias'] == [1001]


def official_18_checkpoint(prefix, classes, winner):
    """Writes a random official_v1 ResNet-18 checkpoint whose classifier scores every image as ``winner``.

    Returns name -> value of every variable.
    """
    with tf.Graph().as_default():
        v1.set_random_seed(4)
        model = ResNet(18, classes, 32, 32, 3, variant='official_v1', training=False)
        bias = np.zeros(classes, np.float32)
        bias[winner] = 50.0
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            names = {model.local_name(v): v for v in model.variables}
            names['resnet_model/dense/kernel'].load(np.zeros([512, classes], np.float32), sess)
            names['resnet_model/dense/bias'].load(bias, sess)
            v1.train.Saver(model.variables).save(sess, str(prefix), write_meta_graph=False)
            return {name: value for name, value in zip(names, sess.run(list(names.values())))}


@pytest.fixture(scope='module')
def background_run(tmp_path_factory):
    """(run directory, values) of an official_v1-18 run imported with 11 classes, class 0 = background."""
    root = tmp_path_factory.mktemp('imported18')
    values = official_18_checkpoint(root / 'model.ckpt-7', 11, WINNER + 1)
    labels = root / 'labels.txt'
    labels.write_text('background\n' + ''.join('digit%d\n' % i for i in range(10)))
    run = root / 'run'
    result = run_cli('import_checkpoint', '--variant', 'official_v1', '--depth', '18', '--checkpoint', root,
                     '--model_dir', run, '--num_classes', '11', '--labels', labels, '--image_size', '32')
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'from %s: ' % (root / 'model.ckpt-7') in result.stdout  # the directory's one checkpoint
    return str(run), values


@pytest.mark.slow
def test_evaluate_takes_a_data_set_and_shifts_past_the_background(background_run):
    from resnet_graph.data import load_source
    run, _ = background_run
    result = run_cli('evaluate', '--model_dir', run, '--dataset', 'digits', '--json')
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout)
    source = load_source('digits')
    labels = source.labels[source.splits['test']]
    # Every image is scored as network class WINNER + 1, which is digit WINNER after the background.
    assert metrics['accuracy'] == pytest.approx(np.mean(labels == WINNER), abs=1e-6)
    assert (metrics['images'], metrics['dataset'], metrics['label_offset']) == (len(labels), 'digits', 1)
    confusion = np.array(metrics['confusion'])
    assert confusion.shape == (11, 11) and confusion[:, WINNER + 1].sum() == len(labels)
    text = run_cli('evaluate', '--model_dir', run, '--dataset', 'digits')
    assert 'data set digits, its class k scored as class k + 1 (class 0 is background)' in text.stdout


@pytest.mark.slow
@pytest.mark.parametrize('args, message', [
    ([], 'was imported (tensorflow/models official r1 ResNet v1.5, 11 classes) and records no data set to '
         'evaluate on; give evaluate --dataset NAME --data_dir DIR (a data set of its classes, in its class order, '
         'or of 10 without the background)'),
    (['--dataset', 'cifar100', '--data_dir', '/nonexistent'], None),
    (['--dataset', 'imagenet'], "--dataset 'imagenet' is unknown; valid: digits, "),
])
def test_evaluate_without_a_fitting_data_set_is_one_line(background_run, args, message):
    run, _ = background_run
    result = run_cli('evaluate', '--model_dir', run, *args)
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert line.startswith('resnet_graph.evaluate: error: ')
    assert message is None or message in line, line


def test_evaluate_names_a_class_count_that_fits_neither_way(background_run):
    from resnet_graph.errors import UsageError
    from resnet_graph.serving.imported import check_dataset
    from resnet_graph.training.run_dir import RunDir
    run, _ = background_run
    cfg = RunDir(str(run), writable=False).load_config()
    cfg = cfg.replace(num_classes=12, class_names=['background'] + ['c%d' % i for i in range(11)])
    with pytest.raises(UsageError, match=r"is a 12-class network \(class 0 background\); --dataset digits has 10 "
                                         r"classes: evaluate needs a data set of the network's classes \(or of 11"):
        check_dataset(cfg, run, 10, 'digits')
    assert check_dataset(cfg, run, 11, 'x') == 1 and check_dataset(cfg, run, 12, 'x') == 0
    cfg = cfg.replace(class_names=['c%d' % i for i in range(12)])  # no background: no shift
    with pytest.raises(UsageError, match=r"12-class network; --dataset x has 11 classes: .*classes$"):
        check_dataset(cfg, run, 11, 'x')


@pytest.mark.slow
def test_latest_of_an_imported_run_points_to_best(background_run, tmp_path):
    run, _ = background_run
    result = run_cli('predict', '--model_dir', run, '--checkpoint', 'latest', tmp_path / 'any.png')
    assert result.returncode == 2
    assert error_lines(result.stderr) == ['resnet_graph.predict: error: no latest checkpoint in %s; it has only its '
                                          'best: use --checkpoint best' % run]


@pytest.mark.slow
def test_train_warm_starts_from_an_imported_run(background_run, tmp_path):
    """The imported weights arrive (the frozen stem and stage 1 bitwise), the head is new, the input the family's."""
    run, values = background_run
    new = tmp_path / 'new'
    result = run_cli('train', '--variant', 'official_v1', '--depth', '18', '--image_size', '32', '--batch_size', '16',
                     '--max_steps', '2', '--log_every', '1', '--warm_start_from', run, '--warm_start_exclude',
                     'dense/', '--freeze_stages', '1', '--model_dir', new)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'input as in %s: vgg preprocessing (its family\'s), 3 channels' % run in result.stdout
    assert 'initialised fresh (resnet_model/dense/kernel, resnet_model/dense/bias)' in result.stdout
    cfg, old = (json.loads(open(os.path.join(d, 'config.json')).read()) for d in (new, run))
    assert (cfg['mean'], cfg['std'], cfg['channels'], cfg['num_classes']) == (old['mean'], old['std'], 3, 10)
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(new)))
    for name in ('resnet_model/conv2d/kernel', 'resnet_model/batch_normalization/moving_mean',
                 'resnet_model/conv2d_5/kernel'):  # the stem and stage 1's last conv: frozen
        np.testing.assert_array_equal(reader.get_tensor(name), values[name], err_msg=name)
    trained = reader.get_tensor('resnet_model/conv2d_20/kernel')  # stage 4: trained two steps from the import
    assert 0 < np.abs(trained - values['resnet_model/conv2d_20/kernel']).max() < 0.01
    assert reader.get_tensor('resnet_model/dense/kernel').shape == (512, 10)


@pytest.mark.slow
def test_train_from_a_family_checkpoint_takes_the_familys_input(official_18, tmp_path):
    """A raw official r1 checkpoint (not an imported run): the new run normalises as the family did, not as the
    data set's statistics would."""
    prefix, _ = official_18
    new = tmp_path / 'new'
    result = run_cli('train', '--variant', 'official_v1', '--depth', '18', '--image_size', '32', '--batch_size', '16',
                     '--max_steps', '1', '--warm_start_from', prefix, '--warm_start_exclude', 'dense/',
                     '--model_dir', new)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "input as in %s: vgg preprocessing (its family's), 3 channels" % prefix in result.stdout
    cfg = json.loads((new / 'config.json').read_text())
    np.testing.assert_allclose(cfg['mean'], [123.68 / 255, 116.78 / 255, 103.94 / 255])
    np.testing.assert_allclose(cfg['std'], [1 / 255.0] * 3)
    assert cfg['channels'] == 3


@pytest.mark.parametrize('args, message', [
    (['--channels', '1'], 'holds resnet_model/conv2d/kernel with shape [7, 7, 3, 64], the network has [7, 7, 1, 64] '
                          '(its network takes 3 input channels, this one 1: give the run --channels 3)'),
    (['--variant', 'standard'], 'is an imported official_v1 ResNet-18: train it with --variant official_v1 --depth '
                                '18 (another network has other layers), got --variant standard --depth 18'),
    (['--depth', '34'], 'got --variant official_v1 --depth 34'),
])
def test_warm_start_into_another_network_says_so(background_run, tmp_path, args, message):
    run, _ = background_run
    result = run_cli('train', '--variant', 'official_v1', '--depth', '18', '--image_size', '32', '--max_steps', '1',
                     '--warm_start_from', run, '--warm_start_exclude', 'dense/', '--model_dir', tmp_path / 'new',
                     *args)
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert message in line, line
    assert not (tmp_path / 'new' / 'config.json').exists()


@pytest.fixture(scope='module')
def official_18(tmp_path_factory):
    """(prefix, values) of a 1001-class official_v1 ResNet-18 checkpoint."""
    root = tmp_path_factory.mktemp('official18')
    return str(root / 'model.ckpt-9'), official_18_checkpoint(root / 'model.ckpt-9', 1001, 1)


def import_18(checkpoint, run, *args):
    return run_cli('import_checkpoint', '--variant', 'official_v1', '--depth', '18', '--checkpoint', checkpoint,
                   '--model_dir', run, '--image_size', '32', *args)


@pytest.mark.slow
def test_the_checkpoint_files_users_hold(official_18, tmp_path):
    """An .index path, a SavedModel's variables directory, a V1 single file (TF-Slim's zoo): all import."""
    prefix, values = official_18
    saved_model = tmp_path / 'saved' / 'variables'
    saved_model.mkdir(parents=True)
    for suffix in ('.index', '.data-00000-of-00001'):
        shutil.copy(prefix + suffix, str(saved_model / ('variables' + suffix)))  # a SavedModel's variables
    v1_file = str(tmp_path / 'resnet_v1_18.ckpt')
    with tf.Graph().as_default(), v1.Session() as sess:
        variables = [v1.Variable(value, name=name) for name, value in values.items()]
        sess.run(v1.global_variables_initializer())
        v1.train.Saver(variables, write_version=v1.train.SaverDef.V1).save(sess, v1_file, write_meta_graph=False)
    assert os.path.isfile(v1_file) and not os.path.exists(v1_file + '.index')
    zoo = tmp_path / 'zoo'  # a model-zoo tarball extracted: a directory with the V1 file alone
    zoo.mkdir()
    shutil.copy(v1_file, str(zoo / 'resnet_v1_18.ckpt'))
    for index, given in enumerate((prefix + '.index', tmp_path / 'saved', v1_file, zoo)):
        run = tmp_path / ('run%d' % index)
        result = import_18(given, run)
        assert result.returncode == 0, (given, result.stderr[-2000:])
        reader = tf.train.load_checkpoint(str(run / 'best' / 'model.ckpt-0'))
        np.testing.assert_array_equal(reader.get_tensor('resnet_model/conv2d_7/kernel'),
                                      values['resnet_model/conv2d_7/kernel'])
    with tf.Graph().as_default(), v1.Session() as sess:  # the Python API reads the V1 file too
        net = ResNet(18, variant='official_v1', height=32, width=32, channels=3, training=False, weights=v1_file)
        sess.run(v1.global_variables_initializer())
        kernel, = [v for v in net.variables if v.op.name == 'resnet_model/conv2d_7/kernel']
        np.testing.assert_array_equal(sess.run(kernel), values['resnet_model/conv2d_7/kernel'])


@pytest.mark.slow
def test_damaged_or_foreign_checkpoints_are_one_line(official_18, tmp_path):
    prefix, _ = official_18
    cut = tmp_path / 'cut'
    cut.mkdir()
    shutil.copy(prefix + '.index', str(cut / 'model.ckpt.index'))
    data = open(prefix + '.data-00000-of-00001', 'rb').read()
    (cut / 'model.ckpt.data-00000-of-00001').write_bytes(data[:len(data) // 2])
    two = tmp_path / 'two'
    two.mkdir()
    for name in ('a', 'b'):
        (two / (name + '.index')).write_bytes(b'')
    cases = [
        ([str(cut / 'model.ckpt')], 'cannot be read: its index or data file is cut short or damaged'),
        ([str(two)], '--checkpoint %s is a directory with 2 checkpoints; give one checkpoint prefix, e.g. %s'
                     % (two, two / 'b')),
        ([prefix, '--num_classes', '0'], '--num_classes must be at least 1, got 0'),
        ([prefix, '--variant', 'slim_v1', '--depth', '50'], "has no variable resnet_v1_50/conv1/weights: it is not "
                                                              "this family and depth (its variables are official r1's "
                                                              "(resnet_model/): --variant official_v1 or official_v2)"),
        ([prefix, '--depth', '34'], 'holds resnet_model/conv2d_6/kernel with shape [1, 1, 64, 128], the network has '
                                    '[3, 3, 64, 64] (another --variant or --depth?)'),
    ]
    for index, (args, message) in enumerate(cases):
        run = tmp_path / ('run%d' % index)
        result = import_18(args[0], run, *args[1:])
        assert result.returncode == 2, args
        line, = error_lines(result.stderr)
        assert message in line, line
        assert not run.exists()
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    result = import_18(prefix, a_file)  # was a FileExistsError traceback
    assert result.returncode == 2 and error_lines(result.stderr) == [
        'resnet_graph.import_checkpoint: error: --model_dir %s exists and is not a directory; choose a new directory'
        % a_file]
