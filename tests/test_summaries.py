"""TensorBoard: every tag at its steps in train/ and eval/, the trace, the confusion matrix."""
import collections
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL, run_cli
from resnet_graph.training import summaries

pytestmark = pytest.mark.slow  # trains a run to read its event files

SCALARS = {'loss', 'cross_entropy', 'accuracy', 'top5_accuracy'}


def read_events(directory):
    """tag -> sorted steps, plus tag -> last value (float, image bytes or text) for one event folder."""
    steps, last = collections.defaultdict(list), {}
    for path in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
        for event in tf.compat.v1.train.summary_iterator(path):
            if event.HasField('graph_def'):
                steps['<graph>'].append(event.step)
            if event.HasField('tagged_run_metadata'):
                steps['<run_metadata:%s>' % event.tagged_run_metadata.tag].append(event.step)
            for value in event.summary.value:
                steps[value.tag].append(event.step)
                kind = value.WhichOneof('value')
                last[value.tag] = (value.simple_value if kind == 'simple_value' else
                                   value.image.encoded_image_string if kind == 'image' else
                                   value.tensor.string_val[0] if kind == 'tensor' else kind)
    return {k: sorted(v) for k, v in steps.items()}, last


@pytest.fixture(scope='module')
def traced_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp('tb') / 'run'
    result = run_cli('train', *SMALL, '--model_dir', model_dir, '--max_steps', 12, '--eval_every', 6,
                     '--log_every', 4, '--histogram_every', 6, '--trace_step', 5)
    assert result.returncode == 0, result.stderr
    return model_dir


def test_train_and_eval_events_hold_every_tag_at_its_steps(traced_run):
    train, train_last = read_events(traced_run / 'train')
    evals, eval_last = read_events(traced_run / 'eval')
    for tag in SCALARS | {'learning_rate', 'gradient_norm', 'examples_per_sec'}:
        assert train[tag] == [4, 8, 12], tag
    for tag in SCALARS:
        assert evals[tag] == [6, 12], tag
    assert train['<graph>'] == [0] and train['config'] == [0] and train['<run_metadata:step5>'] == [5]
    assert [train['inputs/image/%d' % i] for i in range(3)] == [[4, 8, 12]] * 3
    assert evals['confusion_matrix/image/0'] == [6, 12]
    histograms = [t for t in train if t.endswith(('/kernel', '/moving_mean', '/moving_variance'))]
    # Depth 8: 7 convolutions (A shortcuts have no kernel) + the dense kernel; 7 batch norms, 2 statistics each.
    assert len(histograms) == 8 + 2 * 7 and all(train[t] == [6, 12] for t in histograms)
    config = json.loads(train_last['config'].decode().strip('`\n'))
    assert config['depth'] == 8 and config['image_size'] == 16
    best = json.loads((traced_run / 'best.json').read_text())
    assert eval_last['accuracy'] <= best['validation_accuracy'] + 1e-6
    assert eval_last['loss'] > eval_last['cross_entropy'] > 0  # total loss includes the weight decay
    image = tf.io.decode_png(eval_last['confusion_matrix/image/0']).numpy()
    assert image.shape == (250, 250, 3)  # 10 classes, 25 pixels each


def test_trace_is_a_chrome_trace_of_the_step(traced_run):
    trace = json.loads((traced_run / 'train' / 'trace_step_5.json').read_text())
    names = {e.get('name') for e in trace['traceEvents']}
    assert any('Conv2D' in str(n) or 'MatMul' in str(n) for n in names)


def test_event_accumulator_reads_the_same_tags(traced_run):
    accumulator = pytest.importorskip('tensorboard.backend.event_processing.event_accumulator')
    acc = accumulator.EventAccumulator(str(traced_run / 'eval'))
    acc.Reload()
    assert SCALARS <= set(acc.Tags()['scalars'])
    assert [e.step for e in acc.Scalars('accuracy')] == [6, 12]


def test_confusion_matrix_and_its_image():
    matrix = summaries.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    image = summaries.confusion_image(matrix)
    assert image.shape == (1, 255, 255, 3) and image.dtype == np.uint8
    assert image[0, 0, 0, 0] == 127 and image[0, 100, 100, 0] == 255 and image[0, 200, 200, 0] == 170
