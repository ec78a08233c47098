"""variant='legacy': a checkpoint with the legacy trainer's variable names and shapes restores by name."""
import numpy as np
import pytest
import tensorflow as tf

from resnet_graph.nets.model import ResNet

v1 = tf.compat.v1
BN = ('gamma', 'beta', 'moving_mean', 'moving_variance')


def legacy_shapes(depth, channels=1, classes=10):
    """The variables the legacy trainer's tf.layers graph holds, written out from its description:
    every conv has a kernel and a bias and is followed by a batch norm named <conv>_BN; a block's
    shortcut is projected (1x1 conv + BN) where its channel count changes; the head is tf.layers'
    unnamed dense layer."""
    blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    filter_out, filter_out_last_layer = (64, 128, 256, 512), (256, 512, 1024, 2048)
    shapes = {}

    def conv(name, size, cin, cout):
        shapes.update({name + '/kernel': [size, size, cin, cout], name + '/bias': [cout]})
        shapes.update({'%s_BN/%s' % (name, v): [cout] for v in BN})

    conv('First_Conv', 7, channels, 64)
    cin = 64
    for stack in range(4):
        for block in range(blocks[stack]):
            name = 'stack_%d_block_%d' % (stack, block)
            f = filter_out[stack]
            kernels = [(1, f), (3, f), (1, filter_out_last_layer[stack])] if depth >= 50 else [(3, f), (3, f)]
            c = cin
            for layer, (size, filters) in enumerate(kernels):
                conv('%s_conv_%d' % (name, layer), size, c, filters)
                c = filters
            if c != cin:
                conv(name + '_shortcut', 1, cin, c)
            cin = c
    shapes.update({'dense/kernel': [cin, classes], 'dense/bias': [classes]})
    return shapes


def write_legacy_checkpoint(path, shapes):
    """A checkpoint as the legacy trainer's Saver wrote it: its variables, the global step and Adam's state."""
    rng = np.random.RandomState(0)
    values = {name: (rng.uniform(0.5, 1.5, shape) if name.endswith('variance') else rng.normal(0, 0.2, shape))
              .astype(np.float32) for name, shape in shapes.items()}
    with tf.Graph().as_default():
        variables = {name: v1.get_variable(name, shape, initializer=v1.zeros_initializer())
                     for name, shape in shapes.items()}
        v1.get_variable('First_Conv/kernel/Adam', shapes['First_Conv/kernel'])
        v1.get_variable('global_step', [], tf.int64)
        v1.get_variable('beta1_power', [])
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run([v.initializer for v in variables.values()],
                     {v.initializer.inputs[1]: values[name] for name, v in variables.items()})
            prefix = v1.train.Saver().save(sess, path, global_step=120, write_meta_graph=False)
    return prefix, values


@pytest.fixture(scope='module')
def legacy18(tmp_path_factory):
    """(prefix, values) of a legacy ResNet-18 checkpoint (32x32x1 images, 10 classes: the legacy defaults)."""
    return write_legacy_checkpoint(str(tmp_path_factory.mktemp('legacy') / 'resnet'), legacy_shapes(18))


@pytest.mark.parametrize('depth', [18, 50])
def test_legacy_variables_have_the_legacy_names_and_shapes(depth, tf_graph):
    model = ResNet(depth, 10, 32, 32, 1, variant='legacy')
    assert {model.local_name(v): v.shape.as_list() for v in model.variables} == legacy_shapes(depth)


def test_legacy_checkpoint_restores_by_name(legacy18, tf_graph):
    prefix, values = legacy18
    model = ResNet(18, 10, 32, 32, 1, variant='legacy', training=False)
    saver = v1.train.Saver(model.variables)  # by name; global_step and Adam's state stay in the file
    x = np.random.RandomState(1).rand(2, 32, 32, 1).astype(np.float32)
    with v1.Session() as sess:
        saver.restore(sess, prefix)
        for variable in model.variables:
            np.testing.assert_array_equal(sess.run(variable), values[model.local_name(variable)])
        stem, logits = sess.run([model.endpoints['stem'], model.logits], {model.input_x: x})
    assert logits.shape == (2, 10) and np.isfinite(logits).all()
    # The legacy stem: SAME-padded 7x7/2 conv + bias, batch norm (moving statistics, epsilon 1e-3), ReLU,
    # 3x3/2 SAME max-pool; with SAME padding the 7x7/2 on 32 pixels pads 2 before and 3 after.
    with tf.Graph().as_default(), v1.Session() as sess:
        y = tf.nn.conv2d(x, values['First_Conv/kernel'], 2, 'SAME') + values['First_Conv/bias']
        bn = {v: values['First_Conv_BN/' + v] for v in BN}
        y = (y - bn['moving_mean']) / tf.sqrt(bn['moving_variance'] + 1e-3) * bn['gamma'] + bn['beta']
        expected = sess.run(tf.nn.max_pool2d(tf.nn.relu(y), 3, 2, 'SAME'))
    np.testing.assert_allclose(stem, expected, rtol=1e-4, atol=1e-4)


def test_weights_argument_takes_a_legacy_checkpoint(legacy18, tf_graph):
    prefix, values = legacy18
    model = ResNet(18, 10, 32, 32, 1, variant='legacy', weights=prefix)
    assert len(model.weights_report['restored']) == len(values) and not model.weights_report['fresh']
    kernel, = [v for v in model.variables if v.op.name == 'stack_3_block_1_conv_1/kernel']
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(kernel), values['stack_3_block_1_conv_1/kernel'])


def test_legacy_does_not_combine_with_v2(tf_graph):
    with pytest.raises(ValueError, match='resnet_version=2 cannot be combined with variant=legacy'):
        ResNet(18, variant='legacy', resnet_version=2)
