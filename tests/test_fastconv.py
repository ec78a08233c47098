"""The CPU-tuned convolution forms (resnet_graph/fastconv): equal to Conv2D, and chosen by the policy's rules.

The rules are checked as properties of whole graphs (which convolution takes which form, for any
policy), never as pinned op counts, so a change of the policy's numbers keeps these tests true.
"""
import numpy as np
import pytest
import tensorflow as tf

import config
from conftest import ancestors, seeded_logits
from resnet_graph.fastconv import cpu, forms
from resnet_graph.fastconv.policy import ConvPolicy
from resnet_graph.nets import layers
from resnet_graph.nets.model import ResNet

v1 = tf.compat.v1

ALWAYS, NEVER = 1, 10 ** 9  # whole_map_min_batch: the whole-map form at any batch, or never


@pytest.mark.parametrize('size,kernel,stride', [
    (1, 3, 1), (2, 3, 1), (2, 3, 2), (3, 3, 2), (4, 3, 1), (4, 3, 2), (5, 3, 2), (7, 1, 1), (8, 1, 2), (9, 1, 2),
    (4, 7, 2), (8, 3, 1), (12, 5, 1), (9, 3, 1), (8, 3, 2), (11, 7, 2), (2, 5, 1), (3, 3, 1)])
@pytest.mark.parametrize('small_map_positions,whole_map_min_batch', [
    (config.SMALL_MAP_POSITIONS, ALWAYS), pytest.param(config.SMALL_MAP_POSITIONS, NEVER, marks=pytest.mark.slow),
    pytest.param(16, ALWAYS, marks=pytest.mark.slow)])
def test_shape_aware_convolution_equals_conv2d(size, kernel, stride, small_map_positions, whole_map_min_batch,
                                               tf_graph):
    policy = ConvPolicy(small_map_positions, forward_gradients=True, whole_map_min_batch=whole_map_min_batch)
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


def _positions(op):
    """Output positions H * W of a forward Conv2D op."""
    _, height, width, _ = op.outputs[0].shape.as_list()
    return height * width


def _forward_convs(graph):
    return [op for op in graph.get_operations() if op.type == 'Conv2D' and not op.name.startswith('gradients/')]


def _gradient_type(op):
    return op.node_def.attr['_gradient_op_type'].s if '_gradient_op_type' in op.node_def.attr else b''


def _plain_layers(depth, size):
    """{layer scope: (output positions, kernel side, stride)} of every convolution of the plain network."""
    with tf.Graph().as_default() as graph:
        ResNet(depth, 10, size, size, 3, training=False, conv='plain')
        return {op.name[:-len('/Conv2D')]: (_positions(op), op.inputs[1].shape[0], op.get_attr('strides')[1])
                for op in _forward_convs(graph)}


def _layer_ops(graph, scope):
    return [op for op in graph.get_operations() if op.name.startswith(scope + '/')]


@pytest.mark.slow  # ResNet-50 graphs
@pytest.mark.parametrize('small_map_positions', [config.SMALL_MAP_POSITIONS, 16])
def test_training_graph_takes_each_form_where_the_policy_says(small_map_positions, tf_graph):
    policy = ConvPolicy(small_map_positions, forward_gradients=True, whole_map_min_batch=NEVER)
    model = ResNet(50, 10, 32, 32, 3, training=True, conv=policy)  # maps 16, 8, 4, 2, 1
    tf.gradients(model.loss, model.trainable_variables)
    ops = tf_graph.get_operations()
    assert not [op.name for op in ops if op.type == 'StridedSliceGrad']
    slow = [op.name.split('/Conv2D_grad')[0][len('gradients/'):] for op in ops
            if op.type in ('Conv2DBackpropInput', 'Conv2DBackpropFilter')]
    expected_slow = []
    for scope, (positions, kernel, stride) in _plain_layers(50, 32).items():
        kinds = {op.type: op for op in _layer_ops(tf_graph, scope)}
        small = positions <= small_map_positions
        if small or kernel == 1:  # a matrix multiply; on small maps its input gradient is transposed
            assert 'Conv2D' not in kinds and 'MatMul' in kinds, scope
            assert (_gradient_type(kinds['MatMul']) == forms.FEW_ROWS_GRADIENT.encode()) is small, scope
        else:  # Conv2D; stride-1 SAME ones take the forward-convolution gradient, the others TensorFlow's
            assert (_gradient_type(kinds['Conv2D']) == forms.FORWARD_GRADIENT.encode()) is (stride == 1), scope
            expected_slow += [scope] * 2 * (stride != 1)
    assert sorted(slow) == sorted(expected_slow) and expected_slow
    # The gradients' copies of forward tensors (transposed inputs, flipped kernels) wait for the backward pass:
    # made in the forward pass, each would be held to its end, a second copy at the step's memory peak.
    copies = [op for op in ops if op.type in ('Transpose', 'ReverseV2') and op.name.startswith('gradients/')
              and not op.inputs[0].name.startswith('gradients/')]
    assert copies and all('gradients/grad_ys_0' in ancestors(op) for op in copies)


@pytest.mark.slow  # ResNet-50 graphs
def test_inference_graph_keeps_large_1x1_convolutions_as_conv2d(tf_graph):
    # Inference graphs leave 1x1 convolutions over the small-map bound as Conv2D (Grappler fuses them with their
    # BN and ReLU); only small maps become multiplies. The logits equal the plain network's.
    batch = np.random.RandomState(6).rand(2, 64, 64, 3).astype(np.float32)
    policy = ConvPolicy.from_config()
    fast = ResNet(50, 10, 64, 64, 3, training=False, conv=policy)
    for scope, (positions, _, _) in _plain_layers(50, 64).items():
        kinds = {op.type for op in _layer_ops(tf_graph, scope)}
        assert ('Conv2D' in kinds) is (positions > policy.small_map_positions), scope
        assert ('MatMul' in kinds) is (positions <= policy.small_map_positions), scope
    plain = ResNet(50, 10, 64, 64, 3, training=False, conv='plain', scope='', reuse=True)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        a, b = sess.run([fast.logits, plain.logits], {fast.input_x: batch, plain.input_x: batch})
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _whole_map_ops(graph):
    return [op for op in graph.get_operations() if op.type in ('GatherV2', 'Gather')
            and not op.name.startswith('gradients/')]


@pytest.mark.parametrize('batch,min_batch,static,whole_map', [
    (4, 2, True, True), (4, 8, True, False), (4, 8, False, False), (8, 8, False, True)])
def test_whole_map_form_follows_the_batch(batch, min_batch, static, whole_map, tf_graph):
    # ResNet-18 at 64x64: stage 4's 3x3s run on 2x2 maps, fewer positions than live taps. The batch is read
    # from the input's static shape, else from the policy's batch_size hint (the train command's batch).
    images = np.random.RandomState(7).rand(batch, 64, 64, 3).astype(np.float32)
    policy = ConvPolicy(whole_map_min_batch=min_batch, batch_size=None if static else batch)
    x = tf.constant(images) if static else v1.placeholder_with_default(images, [None, 64, 64, 3])
    fast = ResNet(18, 10, 64, 64, 3, input_tensor=x, training=False, conv=policy)
    assert bool(_whole_map_ops(tf_graph)) is whole_map
    plain = ResNet(18, 10, 64, 64, 3, input_tensor=x, training=False, conv='plain', scope='', reuse=True)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        a, b = sess.run([fast.logits, plain.logits])
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # ResNet-50 graphs
def test_fast_and_plain_networks_give_the_same_logits():
    batch = np.random.RandomState(2).rand(4, 32, 32, 3).astype(np.float32)
    outputs = [seeded_logits(batch, 50, 10, 32, 32, 3, conv=conv) for conv in ('shape_aware', 'plain')]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('batch_size,whole_map', [(8, False), (64, True)])
def test_training_network_is_told_its_batch(batch_size, whole_map, tf_graph):
    # The pipeline's batches have no static size; the trainer's policy carries --batch_size instead.
    from resnet_graph.training import towers
    cfg = config.RunConfig.defaults(depth=18, image_size=64, channels=3, num_classes=10, batch_size=batch_size)
    images = v1.placeholder(tf.float32, [None, 64, 64, 3])
    towers.build_model(cfg, '', images, v1.placeholder(tf.int64, [None]))
    assert config.WHOLE_MAP_MIN_BATCH > 8 and bool(_whole_map_ops(tf_graph)) is whole_map
