"""The ResNet graph: parameter counts, shapes, batch norm, learning (its convolution forms: test_fastconv.py)."""
import numpy as np
import pytest
import tensorflow as tf

from resnet_graph.nets.model import ResNet

pytestmark = pytest.mark.slow  # ResNet graphs up to depth 152 built and run

v1 = tf.compat.v1

STANDARD_PARAMS = {18: 11689512, 34: 21797672, 50: 25557032, 101: 44549160, 152: 60192808}


@pytest.mark.parametrize('depth', sorted(STANDARD_PARAMS))
def test_parameter_counts_match_the_standard_models(depth, tf_graph):
    model = ResNet(depth, num_classes=1000, height=224, width=224, channels=3)
    assert model.num_params() == STANDARD_PARAMS[depth]
    assert model.logits.shape.as_list() == [None, 1000]


def test_unknown_depth_lists_the_valid_ones(tf_graph):
    with pytest.raises(ValueError, match='18, 34, 50, 101, 152'):
        ResNet(42)


@pytest.mark.parametrize('depth,size,channels', [(18, 32, 1), (18, 45, 3), (50, 32, 3), (50, 64, 1), (34, 8, 1)])
def test_output_shapes(depth, size, channels, tf_graph):
    model = ResNet(depth, num_classes=7, height=size, width=size, channels=channels)
    batch = np.random.RandomState(0).rand(3, size, size, channels).astype(np.float32)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        logits, probs, preds = sess.run([model.logits, model.probabilities, model.predictions],
                                        {model.input_x: batch})
    assert logits.shape == (3, 7) and probs.shape == (3, 7) and preds.shape == (3,)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(preds, logits.argmax(axis=1))
    assert [model.input_x.name, model.logits.name, model.probabilities.name, model.predictions.name] == [
        'input_x:0', 'logits:0', 'probabilities:0', 'predictions:0']


def _train_op(model):
    step = v1.train.get_or_create_global_step()
    with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
        return v1.train.AdamOptimizer(1e-3).minimize(model.loss, global_step=step)


def test_batch_norm_statistics_move_in_training_and_inference_is_deterministic(tf_graph):
    rng = np.random.RandomState(4)
    x = rng.rand(8, 16, 16, 1).astype(np.float32) * 3 + 1
    y = rng.randint(0, 10, 8)
    model = ResNet(18, 10, 16, 16, 1)
    op = _train_op(model)
    mean, = [v for v in v1.global_variables() if v.op.name == 'stem/bn/moving_mean']
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        before = sess.run(mean)
        infer1 = sess.run(model.logits, {model.input_x: x})
        assert np.array_equal(sess.run(mean), before)  # inference leaves the statistics alone
        sess.run(op, {model.input_x: x, model.input_y: y, model.is_training: True})
        after = sess.run(mean)
        assert not np.allclose(after, before)
        a = sess.run(model.logits, {model.input_x: x})
        b = sess.run(model.logits, {model.input_x: x})
        single = sess.run(model.logits, {model.input_x: x[:1]})
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(single[0], a[0], rtol=1e-4, atol=1e-5)  # no dependence on the batch
    assert not np.allclose(infer1, a)


def test_small_resnet_overfits_a_fixed_batch(tf_graph):
    v1.set_random_seed(5)
    rng = np.random.RandomState(5)
    x = rng.rand(16, 16, 16, 1).astype(np.float32)
    y = np.arange(16) % 4
    model = ResNet(18, 4, 16, 16, 1)
    op = _train_op(model)
    feed = {model.input_x: x, model.input_y: y, model.is_training: True}
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        first = sess.run(model.cross_entropy, feed)
        for _ in range(40):
            sess.run(op, feed)
        last = sess.run(model.cross_entropy, feed)
        accuracy = sess.run(model.accuracy, feed)
    assert last < first / 20, (first, last)
    assert accuracy == 1.0


def test_weight_decay_covers_kernels_only(tf_graph):
    model = ResNet(18, 10, 16, 16, 1, weight_decay=1e-3)
    kernels = [v for v in v1.trainable_variables() if v.name.endswith('kernel:0')]
    assert len(kernels) == 20 + 1  # 17 convs + 3 projections, + the dense head
    expected = 1e-3 * tf.add_n([tf.nn.l2_loss(k) for k in kernels])
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        got, want = sess.run([model.regularization_loss, expected])
    assert got == pytest.approx(want, rel=1e-6) and got > 0
    assert v1.get_collection(v1.GraphKeys.REGULARIZATION_LOSSES) == [model.regularization_loss]
