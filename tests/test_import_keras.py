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
