"""resnet_graph.export: the SavedModel and the frozen graph give the trainer's outputs on the same images."""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL, error_lines, run_cli

pytestmark = pytest.mark.slow  # trains a run to export it


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One tiny run (2 steps, its best checkpoint at step 2) and the trainer graph restored from it."""
    from resnet_graph.serving.inference import RestoredRun
    model_dir = tmp_path_factory.mktemp('export') / 'run'
    result = run_cli('train', *SMALL, '--model_dir', model_dir, '--max_steps', 2, '--eval_every', 2)
    assert result.returncode == 0, result.stderr
    restored = RestoredRun(str(model_dir))
    yield model_dir, restored
    restored.close()


@pytest.fixture(scope='module')
def digits(trained):
    """Four test digits: (raw images float32 [4, 8, 8, 1] in [0, 1], the trainer's probabilities [4, 10])."""
    _, restored = trained
    ids = restored.loader.test_ids[:4]
    model = restored.model
    probabilities = restored.session.run(model.probabilities, {model.input_x: restored.loader.get_batch_data(ids)[0]})
    return restored.loader.source.fetch(ids)[0], probabilities


def export(model_dir, out, fmt, *extra):
    result = run_cli('export', '--model_dir', model_dir, '--format', fmt, '--out', out, *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_saved_model_signatures_give_the_trainer_outputs(trained, digits, tmp_path):
    model_dir, restored = trained
    images, expected = digits
    out = tmp_path / 'saved_model'
    doc = json.loads(export(model_dir, out, 'saved_model', '--json'))
    assert doc['checkpoint'] == restored.checkpoint and doc['checkpoint'].endswith('best/model.ckpt-2')
    assert doc['signatures']['predict_images']['inputs'] == {'images': ['images', 'float32', [None, None, None, 1]]}
    assert doc['signatures']['serving_default']['outputs']['probabilities'][1:] == ['float32', [None, 10]]
    loaded = tf.saved_model.load(str(out))
    assert set(loaded.signatures) == {'serving_default', 'predict_images'}

    floats = loaded.signatures['predict_images'](images=tf.constant(images))
    np.testing.assert_allclose(floats['probabilities'].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(floats['classes'].numpy(), expected.argmax(axis=1))

    # Encoded images of other sizes in one batch: each decoded and preprocessed as predict does.
    from resnet_graph.predict import predict_files
    pixels = [np.round(image * 255).astype(np.uint8) for image in images]
    pixels[1] = np.kron(pixels[1], np.ones((3, 3, 1), np.uint8))  # 24x24
    paths = []
    for index, array in enumerate(pixels):
        paths.append(str(tmp_path / ('%d.png' % index)))
        tf.io.write_file(paths[-1], tf.io.encode_png(array))
    served = loaded.signatures['serving_default'](image_bytes=tf.constant([open(p, 'rb').read() for p in paths]))
    answers = predict_files(restored, paths, top_k=10)
    for answer, probabilities, cls in zip(answers, served['probabilities'].numpy(), served['classes'].numpy()):
        by_class = {p['class_id']: p['probability'] for p in answer['top_k']}
        np.testing.assert_allclose(probabilities, [by_class[c] for c in range(10)], atol=1e-5)
        assert cls == answer['top_k'][0]['class_id']
    np.testing.assert_allclose(served['probabilities'].numpy()[[0, 2, 3]], expected[[0, 2, 3]], atol=2e-2)

    if shutil.which('saved_model_cli'):
        shown = subprocess.run(['saved_model_cli', 'show', '--dir', str(out), '--all'], capture_output=True,
                               text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        for text in ("signature_def['serving_default']", "signature_def['predict_images']", "inputs['image_bytes']",
                     'DT_STRING', "inputs['images']", "outputs['classes']", 'DT_INT64', "outputs['probabilities']"):
            assert text in shown.stdout, text


def test_frozen_graph_imports_into_a_fresh_graph(trained, digits, tmp_path):
    model_dir, _ = trained
    images, expected = digits
    out = tmp_path / 'frozen' / 'model.pb'
    printed = export(model_dir, out, 'frozen_graph', '--checkpoint', 'best')
    assert 'nodes: input images (float32 [None, None, None, 1]) -> outputs classes (int64 [None]), ' \
           'probabilities (float32 [None, 10])' in printed
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(out.read_bytes())
    assert not any(node.op in ('VarHandleOp', 'VariableV2', 'Placeholder') and node.name != 'images'
                   for node in graph_def.node)
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name='')
        with tf.compat.v1.Session(graph=graph) as session:
            probabilities, classes = session.run(['probabilities:0', 'classes:0'], {'images:0': images})
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(classes, expected.argmax(axis=1))


def test_bad_input_is_one_line_and_exit_2(trained, tmp_path):
    model_dir, _ = trained
    taken = tmp_path / 'taken'
    taken.mkdir()
    cases = [
        (['--model_dir', tmp_path / 'none', '--format', 'saved_model', '--out', tmp_path / 'a'], 'not a run directory'),
        (['--model_dir', model_dir, '--format', 'onnx', '--out', tmp_path / 'a'], 'saved_model|frozen_graph'),
        (['--model_dir', model_dir, '--format', 'saved_model', '--out', taken], 'already exists'),
        (['--model_dir', model_dir, '--format', 'frozen_graph', '--out', taken], 'is a directory'),
        (['--model_dir', model_dir, '--format', 'frozen_graph'], '--out is required'),
        (['--model_dir', model_dir, '--format', 'frozen_graph', '--out', model_dir / 'config.json'],
         'is inside the run directory'),
        (['--model_dir', model_dir, '--format', 'saved_model', '--out', model_dir / 'served'],
         'is inside the run directory'),
    ]
    config_before = (model_dir / 'config.json').read_bytes()
    for args, message in cases:
        result = run_cli('export', *args)
        lines = error_lines(result.stderr)
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr)
        assert 'Traceback' not in result.stderr
    assert os.listdir(taken) == [] and (model_dir / 'config.json').read_bytes() == config_before
    assert not (model_dir / 'served').exists()
    from resnet_graph.errors import UsageError
    from resnet_graph.export import export as export_run  # in process: TensorFlow is loaded already
    missing = str(tmp_path / 'model.ckpt-7')
    with pytest.raises(UsageError, match=re.escape('no %s checkpoint in %s' % (missing, model_dir))):
        export_run(str(model_dir), missing, 'frozen_graph', str(tmp_path / 'a.pb'))
    assert not os.path.exists(tmp_path / 'a') and not os.path.exists(tmp_path / 'a.pb')
