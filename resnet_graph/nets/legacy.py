"""``variant='legacy'``: the legacy trainer's graph under its own variable names, so its checkpoints restore by name.

The legacy trainer (``tf.layers``, described in the project's seeds) built:
  First_Conv              7x7/2 conv with bias, TensorFlow SAME padding, + First_Conv_BN, ReLU;
                          3x3/2 max-pool (SAME)
  stack_S_block_B_conv_L  S = 0..3 stages, B = blocks, L = 0..1 (basic) or 0..2 (bottleneck):
                          conv with bias (SAME) + stack_S_block_B_conv_L_BN, ReLU except after the last;
                          the stride of a stage's first block (2 from the second stage) in conv_0,
                          the first 1x1 of a bottleneck (v1)
  stack_S_block_B_shortcut 1x1 conv with bias (the block's stride) + ..._shortcut_BN, only where the
                          channel count changes; then the sum and a ReLU
  dense                   dense/kernel, dense/bias on the global average (kernel: truncated normal, stddev 0.1)
Batch norm has tf.layers' epsilon 1e-3 (``variants.resolve`` sets it). Stage outputs are
``stage<i>_output`` and ``endpoints`` has the usual keys.
"""
import tensorflow as tf

from resnet_graph.nets import layers

v1 = tf.compat.v1


def _conv_bn(net, x, filters, kernel_size, stride, name, relu):
    return net._conv_bn(x, filters, kernel_size, stride, name, name + '_BN', padding='SAME', relu=relu)


def backbone(net, x):
    """The legacy stem and stages on ``net`` (a ResNet with variant='legacy'): [N, H, W, C] -> [N, h, w, 512|2048]."""
    spec = net.spec
    x = _conv_bn(net, x, 64, 7, 2, 'First_Conv', relu=True)
    net.endpoints['stem'] = x = layers.max_pool(x, data_format=net.data_format)
    channel_axis = 1 if net.data_format == 'NCHW' else -1
    for stage, (blocks, inner, out) in enumerate(zip(spec.num_blocks, spec.inner_widths, spec.out_widths)):
        for block in range(blocks):
            name = 'stack_%d_block_%d' % (stage, block)
            stride = 2 if stage > 0 and block == 0 else 1
            convs = ([(inner, 1, stride), (inner, 3, 1), (out, 1, 1)] if spec.block_kind == 'bottleneck'
                     else [(inner, 3, stride), (out, 3, 1)])
            y = x
            for index, (filters, size, step) in enumerate(convs):
                y = _conv_bn(net, y, filters, size, step, '%s_conv_%d' % (name, index), relu=index < len(convs) - 1)
            shortcut = x
            if x.shape[channel_axis] != out:  # the legacy rule: project where the channel count changes
                shortcut = _conv_bn(net, x, out, 1, stride, name + '_shortcut', relu=False)
            x = tf.nn.relu(tf.add(shortcut, y, name=name + '_residual'))
        net.endpoints['stage%d' % (stage + 1)] = x = tf.identity(x, name='stage%d_output' % (stage + 1))
    return x


def head(net, x):
    """Global average + the legacy ``dense`` layer: [N, h, w, C] -> logits [N, num_classes]."""
    x = layers.global_avg_pool(x, data_format=net.data_format)
    return layers.dense(x, net.num_classes, name='dense', initializer=v1.truncated_normal_initializer(stddev=0.1))
