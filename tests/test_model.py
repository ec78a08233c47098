"""The ResNet graph: parameter counts, shapes, layer parity, batch norm, learning."""
import numpy as np
import pytest
import tensorflow as tf

import config
from conftest import ancestors, seeded_logits
from resnet_graph.fastconv import cpu, forms
from resnet_graph.fastconv.policy import ConvPolicy
from resnet_graph.nets import layers
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


@pytest.mark.parametrize('size,kernel,stride', [
    (1, 3, 1), (2, 3, 1), (2, 3, 2), (3, 3, 2), (4, 3, 1), (4, 3, 2), (5, 3, 2), (7, 1, 1), (8, 1, 2), (9, 1, 2),
    (4, 7, 2), (8, 3, 1), (12, 5, 1), (9, 3, 1), (8, 3, 2), (11, 7, 2), (2, 5, 1), (3, 3, 1)])
@pytest.mark.parametrize('small_map_positions', [config.SMALL_MAP_POSITIONS, 16])  # the default, and patches up to 4x4
def test_shape_aware_convolution_equals_conv2d(size, kernel, stride, small_map_positions, tf_graph):
    policy = ConvPolicy(small_map_positions, forward_gradients=True)  # on any CPU: their values are tested here
    x = tf.constant(np.random.RandomState(1).randn(2, size, size, 5).astype(np.float32))
    with v1.variable_scope('c'):
        fast = layers.conv2d(x, 6, kernel, stride, policy=policy)
    with v1.variable_scope('c', reuse=True):
        plain = layers.conv2d(x, 6, kernel, stride)
    grads = tf.gradients(tf.reduce_sum(fast * fast), [x] + v1.trainable_variables())
    plain_grads = tf.gradients(tf.reduce_sum(plain * plain), [x] + v1.trainable_variables())
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        a, b, ga, gb = sess.run([fast, plain, grads, plain_grads])
    assert a.shape == b.shape == (2, -(-size // stride), -(-size // stride), 6)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for g, h in zip(ga, gb):
        np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-3)


def test_forward_conv_gradients_are_on_where_the_cpu_lacks_avx512(tf_graph, monkeypatch):
    for setting, avx512, expected in [('auto', False, True), ('auto', True, False), ('on', True, True),
                                      ('off', False, False)]:
        monkeypatch.setattr(config, 'FORWARD_CONV_GRADIENTS', setting)
        monkeypatch.setattr(cpu, 'has_avx512', lambda: avx512)
        policy = ConvPolicy.from_config()
        assert policy.forward_gradients is expected
        y = layers.conv2d(tf.zeros([2, 8, 8, 3]), 4, 3, name='conv_%s_%s' % (setting, avx512), policy=policy)
        assert (y.op.get_attr('_gradient_op_type') == forms.FORWARD_GRADIENT.encode()
                if '_gradient_op_type' in y.op.node_def.attr else False) is expected
    # This machine's answer agrees with its /proc/cpuinfo.
    monkeypatch.undo()
    with open('/proc/cpuinfo') as info:
        assert cpu.has_avx512() == ('avx512f' in info.read().split())
    for earlier in (True, False):  # config.py's earlier booleans
        monkeypatch.setattr(config, 'FORWARD_CONV_GRADIENTS', earlier)
        assert cpu.enabled('FORWARD_CONV_GRADIENTS') is earlier
    monkeypatch.setattr(config, 'FORWARD_CONV_GRADIENTS', 'yes')
    with pytest.raises(ValueError, match="config.FORWARD_CONV_GRADIENTS is 'yes': set it to one of 'auto', 'on', "
                                         "'off' in config.py"):
        cpu.enabled('FORWARD_CONV_GRADIENTS')


def test_training_graph_has_no_slow_gradient_ops(tf_graph):
    # ResNet-50 at 32x32: maps 16, 8, 4, 2, 1. Only the stem (7x7/2) and the two strided 3x3s whose outputs
    # exceed SMALL_MAP_POSITIONS (8x8 -> 4x4, 16x16 -> 8x8 is the max-pool) keep TensorFlow's own gradients;
    # the stem's input needs none.
    model = ResNet(50, 10, 32, 32, 3, training=True, conv=ConvPolicy(forward_gradients=True))
    tf.gradients(model.loss, model.trainable_variables)
    kinds = [op.type for op in tf_graph.get_operations()]
    assert kinds.count('StridedSliceGrad') == 0
    slow = sorted(op.name.split('/Conv2D_grad')[0] for op in tf_graph.get_operations()
                  if op.type in ('Conv2DBackpropInput', 'Conv2DBackpropFilter'))
    # (The stem's input gradient is in the graph, built with its kernel's, and pruned when a step runs.)
    assert slow == ['gradients/stage2/block0/conv2'] * 2 + ['gradients/stem/conv'] * 2
    forward = [op for op in tf_graph.get_operations() if op.type == 'Conv2D' and 'gradients' not in op.name]
    assert len(forward) == 1 + 3 + 4  # the stem, stage1's three 3x3s, stage2's four (outputs 4x4)
    assert sum(op.get_attr('_gradient_op_type') == forms.FORWARD_GRADIENT.encode()
               for op in forward if '_gradient_op_type' in op.node_def.attr) == 3 + 3
    # The multiplies on 2x2 and 1x1 maps (stage3 but its block0/conv1, whose output is 4x4; all of stage4)
    # take their input gradient transposed (``_few_rows_matmul_grads``).
    few_rows = [op.name for op in tf_graph.get_operations() if op.type == 'MatMul' and 'gradients' not in op.name
                and op.node_def.attr['_gradient_op_type'].s == forms.FEW_ROWS_GRADIENT.encode()]
    assert len(few_rows) == (3 + 5 * 3) + (4 + 2 * 3)
    assert {name.split('/')[0] for name in few_rows} == {'stage3', 'stage4'}
    names = {op.name for op in tf_graph.get_operations()}
    assert all('gradients/%s_grad/transpose' % name in names for name in few_rows)
    # The gradients' copies of forward tensors (the forward-convolution gradients' transposed inputs and
    # flipped kernels) wait for the backward pass: made in the forward pass, each would be held to the end
    # of it, a second copy at the step's memory peak.
    copies = [op for op in tf_graph.get_operations() if op.type in ('Transpose', 'ReverseV2')
              and op.name.startswith('gradients/')]
    assert len([op for op in copies if not op.inputs[0].name.startswith('gradients/')]) == 2 * (3 + 3)
    assert all('gradients/grad_ys_0' in ancestors(op) for op in copies)


def test_fast_and_plain_networks_give_the_same_logits():
    batch = np.random.RandomState(2).rand(4, 32, 32, 3).astype(np.float32)
    outputs = [seeded_logits(batch, 50, 10, 32, 32, 3, conv=conv) for conv in ('shape_aware', 'plain')]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)


def test_inference_graph_keeps_large_1x1_convolutions_as_conv2d(tf_graph):
    # training=False at 64x64 (maps 16, 16, 8, 4, 2): 1x1 convolutions with more than SMALL_MAP_POSITIONS
    # outputs stay Conv2D (fused with their BN and ReLU by Grappler), those on 2x2 maps are matrix multiplies;
    # the logits equal the plain network's from the same variables.
    batch = np.random.RandomState(6).rand(2, 64, 64, 3).astype(np.float32)
    fast = ResNet(50, 10, 64, 64, 3, training=False)
    plain = ResNet(50, 10, 64, 64, 3, training=False, conv='plain', scope='', reuse=True)
    ops = tf_graph.get_operations()
    # ResNet-50 has 53 convolutions; on 2x2 outputs: stage4's shortcut, 3 3x3s and 5 1x1s (not block0/conv1, 4x4).
    assert len([op for op in ops if op.type == 'Conv2D']) == 53 + 53 - 9
    assert len([op for op in ops if op.type == 'MatMul']) == 9 + 2  # and the two heads
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        a, b = sess.run([fast.logits, plain.logits], {fast.input_x: batch, plain.input_x: batch})
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


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
