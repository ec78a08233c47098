"""import_checkpoint: an official r1 checkpoint becomes a run that predict, export and ResNet.from_run use."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import official_reference as ref
from conftest import error_lines, run_cli

v1 = tf.compat.v1
MEAN = np.array([123.68, 116.78, 103.94])  # official r1's imagenet_preprocessing channel means


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    """(path of a 64x64 RGB PNG, its uint8 pixels)."""
    from PIL import Image
    pixels = np.random.RandomState(7).randint(0, 256, (64, 64, 3)).astype(np.uint8)
    path = tmp_path_factory.mktemp('png') / 'image.png'
    Image.fromarray(pixels).save(str(path))
    return str(path), pixels


@pytest.fixture(scope='module', params=[1, 2], ids=['official_v1', 'official_v2'])
def imported(request, tmp_path_factory, image):
    """(version, run directory, reference logits [1001] of ``image``) after the import command."""
    version = request.param
    root = tmp_path_factory.mktemp('import')
    weights = ref.random_weights(ref.variable_shapes(version), seed=10 + version)
    prefix = ref.write_checkpoint(weights, root / 'model.ckpt-112603')
    run = root / 'run'
    result = run_cli('import_checkpoint', '--variant', 'official_v%d' % version, '--depth', '50', '--checkpoint',
                     prefix, '--model_dir', run, '--image_size', '64')
    assert result.returncode == 0, result.stderr[-2000:]
    assert '1001 classes (class 0 is background: class k is ImageNet class k-1); image_size 64 recorded' \
        in result.stdout
    logits = ref.Official(version, weights=weights)(image[1][None].astype(np.float64) - MEAN)[0]
    return version, str(run), logits


@pytest.mark.slow
def test_config_records_what_the_run_is(imported):
    version, run, _ = imported
    cfg = json.load(open(os.path.join(run, 'config.json')))
    assert (cfg['variant'], cfg['depth'], cfg['num_classes'], cfg['image_size'], cfg['dataset']) == (
        'official_v%d' % version, 50, 1001, 64, None)
    assert cfg['class_names'][:3] == ['background', '0', '1'] and len(cfg['class_names']) == 1001
    np.testing.assert_allclose(np.array(cfg['mean']) * 255, MEAN)
    np.testing.assert_allclose(np.array(cfg['std']) * 255, 1.0)
    assert cfg['bn_momentum'] == 0.997 and cfg['preprocessing'] == 'vgg'


@pytest.mark.slow
def test_predict_gives_the_reference_class(imported, image):
    _, run, logits = imported
    top = np.argsort(-logits)
    assert logits[top[0]] - logits[top[1]] > 1e-3 * np.abs(logits).max()  # a clear winner
    result = run_cli('predict', '--model_dir', run, '--json', '--top_k', '1', image[0])
    assert result.returncode == 0, result.stderr[-2000:]
    best = json.loads(result.stdout.splitlines()[-1])[0]['top_k']
    assert [p['class_id'] for p in best] == [top[0]]  # the rest have probability 0 at these logits
    assert best[0]['name'] == str(top[0] - 1)  # the background offset


def test_from_run_builds_the_preprocessing_in(imported, image):
    from resnet_graph.nets.model import ResNet
    _, run, logits = imported
    with tf.Graph().as_default():
        raw = tf.constant(image[1][None].astype(np.float32))
        net = ResNet.from_run(run, input_tensor=raw)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            got = sess.run(net.logits)[0]
    assert np.abs(got - logits).max() <= 1e-4 * np.abs(logits).max()


@pytest.mark.slow
def test_export_serves_the_reference_class(imported, image, tmp_path):
    """Both signatures of the exported SavedModel give the reference's probabilities, and predict's."""
    version, run, logits = imported
    out = tmp_path / 'saved'
    result = run_cli('export', '--model_dir', run, '--format', 'saved_model', '--out', out)
    assert result.returncode == 0, result.stderr[-2000:]
    with tf.Graph().as_default(), v1.Session() as sess:
        meta = v1.saved_model.loader.load(sess, ['serve'], str(out))
        by_bytes, by_pixels = meta.signature_def['serving_default'], meta.signature_def['predict_images']
        classes, probabilities = sess.run([by_bytes.outputs['classes'].name, by_bytes.outputs['probabilities'].name],
                                          {by_bytes.inputs['image_bytes'].name: [open(image[0], 'rb').read()]})
        from_pixels = sess.run(by_pixels.outputs['probabilities'].name,
                               {by_pixels.inputs['images'].name: image[1][None].astype(np.float32) / 255.0})
    assert classes.tolist() == [int(np.argmax(logits))]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(probabilities[0], expected, atol=1e-4)
    np.testing.assert_allclose(from_pixels[0], expected, atol=1e-4)
    predicted = run_cli('predict', '--model_dir', run, '--json', '--top_k', '1', image[0])
    best = json.loads(predicted.stdout.splitlines()[-1])[0]['top_k'][0]
    assert best['probability'] == pytest.approx(float(probabilities[0].max()), abs=1e-5)


@pytest.mark.parametrize('args, message', [
    (['--variant', 'official_v2'], 'holds resnet_model/batch_normalization_1/gamma with shape [256], the network '
                                   'has [64] (another --variant or --depth?)'),
    (['--variant', 'official_v1', '--depth', '101'], 'holds resnet_model/conv2d_43/kernel with shape [1, 1, 1024, '
                                                     '2048], the network has [1, 1, 1024, 256] (another --variant '
                                                     'or --depth?)'),
    (['--variant', 'official_v1', '--num_classes', '10'], 'holds resnet_model/dense/kernel with shape [2048, 1001], '
                                                          'the network has [2048, 10] (pass --num_classes 1001)'),
])
def test_a_checkpoint_of_another_family_or_depth_is_one_line(tmp_path, args, message):
    weights = ref.random_weights(ref.variable_shapes(1))
    prefix = ref.write_checkpoint(weights, tmp_path / 'model.ckpt')
    result = run_cli('import_checkpoint', '--checkpoint', prefix, '--model_dir', tmp_path / 'run', *args)
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert line == 'resnet_graph.import_checkpoint: error: checkpoint %s %s' % (prefix, message)
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_evaluate_refuses_an_imported_run(imported):
    _, run, _ = imported
    result = run_cli('evaluate', '--model_dir', run)
    assert result.returncode == 2
    line, = error_lines(result.stderr)
    assert 'was imported (tensorflow/models official r1' in line and 'records no data set' in line


def test_labels_file_takes_the_background_offset(tmp_path):
    from resnet_graph.errors import UsageError
    from resnet_graph.serving.imported import class_names
    labels = tmp_path / 'labels.txt'
    labels.write_text('\n'.join('name%d' % i for i in range(1000)) + '\n')
    assert class_names(1001, str(labels))[:2] == ['background', 'name0']
    assert class_names(1000, str(labels))[999] == 'name999'
    with pytest.raises(UsageError, match='has 1000 names, the network 10 classes'):
        class_names(10, str(labels))


@pytest.mark.slow
@pytest.mark.parametrize('version', [1, 2], ids=['slim_v1', 'slim_v2'])
def test_slim_checkpoint_round_trip(version, tmp_path, image):
    """A Slim resnet_v<version>_50 checkpoint: imported, predicted with the family's preprocessing, exported."""
    import test_slim as slim_ref
    values = slim_ref.random_values(slim_ref.slim_shapes(version), seed=20 + version)
    prefix = slim_ref.write_checkpoint(str(tmp_path / 'model.ckpt'), values)
    run = tmp_path / 'run'
    result = run_cli('import_checkpoint', '--variant', 'slim_v%d' % version, '--depth', '50', '--checkpoint',
                     prefix, '--model_dir', run, '--image_size', '64')
    assert result.returncode == 0, result.stderr[-2000:]
    pixels = image[1][None].astype(np.float64)
    # slim v1: VGG means subtracted from 0..255 values; slim v2: inception's x / 127.5 - 1.
    logits = slim_ref.np_slim(values, pixels - MEAN if version == 1 else pixels / 127.5 - 1, version)[0][0]
    top = int(np.argmax(logits))
    result = run_cli('predict', '--model_dir', run, '--json', '--top_k', '1', image[0])
    assert result.returncode == 0, result.stderr[-2000:]
    best = json.loads(result.stdout.splitlines()[-1])[0]['top_k'][0]
    assert best['class_id'] == top
    assert best['name'] == (str(top) if version == 1 else str(top - 1))  # v2's 1001 classes: 0 is background
    out = tmp_path / 'saved'
    result = run_cli('export', '--model_dir', run, '--format', 'saved_model', '--out', out)
    assert result.returncode == 0, result.stderr[-2000:]
    with tf.Graph().as_default(), v1.Session() as sess:
        signature = v1.saved_model.loader.load(sess, ['serve'], str(out)).signature_def['serving_default']
        classes = sess.run(signature.outputs['classes'].name,
                           {signature.inputs['image_bytes'].name: [open(image[0], 'rb').read()]})
    assert classes.tolist() == [top]
