"""Keras interop: a keras.applications ResNet50 with random weights imported as a run gives the same logits."""
import json

import numpy as np
import pytest

from conftest import error_lines, run_cli
from resnet_graph import import_keras

pytestmark = pytest.mark.slow  # builds Keras ResNet-50s

keras = pytest.importorskip('keras')


@pytest.fixture(scope='module')
def keras_resnet50(tmp_path_factory):
    """keras.applications.ResNet50 (64x64x3, 10 classes, logits out) with random weights and BN statistics,
    saved as .weights.h5; returns (model, path)."""
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10,
                                        classifier_activation=None)
    rng = np.random.RandomState(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):  # so that every BN weight matters
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 1.5, c)])
        elif isinstance(layer, keras.layers.Conv2D):  # biases start at zero: make them count
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.1, bias.shape)])
    path = tmp_path_factory.mktemp('keras') / 'resnet50.weights.h5'
    model.save_weights(str(path))
    return model, path


def test_imported_run_gives_the_keras_logits(keras_resnet50, tmp_path):
    model, path = keras_resnet50
    # What `python -m resnet_graph.import_keras --model resnet50 --weights PATH --model_dir DIR --image_size 64`
    # does, in-process (the command line itself is run in the test below).
    loaded = import_keras.load_keras(str(path), 'resnet50')
    weights = import_keras.keras_weights(loaded, 'resnet50', 50)
    import_keras.write_run(import_keras.run_config(50, 10, 64, str(tmp_path / 'run')), weights)
    cfg = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert (cfg['variant'], cfg['depth'], cfg['num_classes'], cfg['image_size'], cfg['channels']) == (
        'keras', 50, 10, 64, 3)
    np.testing.assert_allclose(np.array(cfg['mean']) * 255, [123.68, 116.779, 103.939], rtol=1e-6)
    np.testing.assert_allclose(np.array(cfg['std']) * 255, 1.0, rtol=1e-6)

    from resnet_graph.serving.inference import RestoredRun
    restored = RestoredRun(str(tmp_path / 'run'))
    ours = restored.model
    # Keras counts the BN moving statistics too: 25,636,712 with 1000 classes = ours with 10 + 990 more outputs.
    total = sum(v.shape.num_elements() for v in ours.variables)
    assert total == model.count_params() and total + 990 * 2049 == 25636712
    assert ours.num_params() + 990 * 2049 == 25583592  # Keras's "trainable params"
    bgr = np.random.RandomState(1).normal(0, 50, (4, 64, 64, 3)).astype(np.float32)  # caffe-style input
    expected = model.predict(bgr, verbose=0)
    got = restored.session.run(ours.logits, {ours.input_x: bgr[..., ::-1]})  # ours reads RGB
    restored.close()
    assert np.abs(expected).max() > 1  # the logits are not trivially small
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_imagenet_weights_are_not_downloaded(tmp_path):
    result = run_cli('import_keras', '--model', 'resnet101', '--weights', 'imagenet', '--model_dir', tmp_path)
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert line.startswith('resnet_graph.import_keras: error: --weights imagenet: resnet_graph does not download; '
                           'get https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet101_'
                           'weights_tf_dim_ordering_tf_kernels.h5')
    assert '~/.keras/models/resnet101_weights_tf_dim_ordering_tf_kernels.h5' in line


def test_a_keras_file_of_another_model_exits_2(tmp_path):
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name='conv1_conv'),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, name='predictions')])
    path = tmp_path / 'other.keras'
    other.save(str(path))
    result = run_cli('import_keras', '--model', 'resnet50', '--weights', path, '--model_dir', tmp_path / 'run')
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        'resnet_graph.import_keras: error: the Keras file holds another model than keras.applications.ResNet50: '
        'missing layers conv1_bn, conv2_block1_0_bn, conv2_block1_0_conv']
    assert not (tmp_path / 'run').exists()


@pytest.fixture(scope='module')
def keras_12_classes(tmp_path_factory):
    """A keras.applications.ResNet50 .weights.h5 of 12 classes (not the digits' 10) and a labels file of 12 names."""
    keras.utils.set_random_seed(1)
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=12,
                                        classifier_activation=None)
    root = tmp_path_factory.mktemp('keras12')
    model.save_weights(str(root / 'resnet50.weights.h5'))
    (root / 'labels.txt').write_text(''.join('kind%d\n' % i for i in range(12)))
    return root / 'resnet50.weights.h5', root / 'labels.txt'


@pytest.fixture(scope='module')
def imported_12(keras_12_classes, tmp_path_factory):
    """(run directory, the import command's stdout) of the 12-class file imported with --labels."""
    path, labels = keras_12_classes
    run = tmp_path_factory.mktemp('run12') / 'run'
    result = run_cli('import_keras', '--model', 'resnet50', '--weights', path, '--model_dir', run, '--labels', labels)
    assert result.returncode == 0, result.stderr[-2000:]
    return run, result.stdout


def test_an_imported_run_records_its_classes_and_image_size(imported_12, tmp_path):
    run, stdout = imported_12
    assert '12 classes; image_size 224 recorded' in stdout  # the size every image will be resized to, said
    cfg = json.loads((run / 'config.json').read_text())
    assert (cfg['num_classes'], cfg['dataset'], cfg['image_size']) == (12, None, 224)
    assert cfg['class_names'] == ['kind%d' % i for i in range(12)] and cfg['preprocessing'] == 'caffe'
    from PIL import Image
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(str(tmp_path / 'a.png'))
    result = run_cli('predict', '--model_dir', run, '--json', '--top_k', '12', tmp_path / 'a.png')
    assert result.returncode == 0, result.stderr[-2000:]  # the old run (10 digit names) crashed with IndexError
    top = json.loads(result.stdout.splitlines()[-1])[0]['top_k']
    assert sorted(p['name'] for p in top) == sorted('kind%d' % i for i in range(12))


def test_evaluate_refuses_an_imported_run(imported_12):
    run, _ = imported_12
    result = run_cli('evaluate', '--model_dir', run)
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert line.startswith('resnet_graph.evaluate: error: %s was imported (keras.applications ResNet, 12 classes) '
                           'and records no data set to evaluate on' % run)


def test_evaluate_refuses_a_data_set_of_another_class_count(imported_12, tmp_path):
    """A run imported by the old command (dataset: digits recorded) is not scored on the digits."""
    run, _ = imported_12
    old = tmp_path / 'old'
    import shutil
    shutil.copytree(str(run), str(old))
    cfg = json.loads((old / 'config.json').read_text())
    cfg.update(dataset='digits', model_dir=str(old))
    del cfg['class_names'], cfg['imported']
    (old / 'config.json').write_text(json.dumps(cfg))
    result = run_cli('evaluate', '--model_dir', old)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "resnet_graph.evaluate: error: %s is a 12-class network; its data set digits has 10 classes: evaluate needs "
        "a data set of the network's classes" % old]


def test_weights_of_another_depth_are_one_line_without_warnings(keras_12_classes, tmp_path):
    path, _ = keras_12_classes
    result = run_cli('import_keras', '--model', 'resnet101', '--weights', path, '--model_dir', tmp_path / 'run')
    assert result.returncode == 2
    assert 'UserWarning' not in result.stderr and 'could not be loaded' not in result.stderr
    line, = error_lines(result.stderr)
    assert line == ('resnet_graph.import_keras: error: the Keras file holds another model than keras.applications.'
                    'ResNet101: missing layers conv4_block10_1_bn, conv4_block10_1_conv, conv4_block10_2_bn (it is '
                    'keras.applications.ResNet50: --model resnet50)')
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('name, message', [
    ('model.keras', 'is not a Keras archive: a .keras file is a zip archive'),
    ('model.weights.h5', 'is not an HDF5 file: a .h5 or .weights.h5 Keras file is one')])
def test_a_file_that_is_not_keras_says_so(tmp_path, name, message):
    path = tmp_path / name
    path.write_text('these are not weights\n')
    result = run_cli('import_keras', '--model', 'resnet50', '--weights', path, '--model_dir', tmp_path / 'run')
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert line.startswith('resnet_graph.import_keras: error: %s %s' % (path, message))
    assert 'File not found' not in result.stderr
