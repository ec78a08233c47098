"""``variant='official_v1'`` / ``'official_v2'``: tensorflow/models' official r1 ResNet, restorable by name.

official/r1/resnet/resnet_model.py (the 20181001 ImageNet checkpoints) builds, under
``resnet_model/``, with ``tf.layers`` numbering each layer kind in creation order:
  stem      conv2d (7x7/2, no bias, fixed padding); v1: batch_normalization + ReLU;
            3x3/2 max-pool (SAME)
  stages    four ``block_layer``s of 64, 128, 256, 512 filters, strides 1, 2, 2, 2; the first
            block of every stage has a 1x1 projection shortcut (even at stride 1), the others
            the identity
  v1 block  projection conv + BN are created FIRST, then conv-BN-ReLU per conv (the last
            BN without ReLU), + shortcut, ReLU; bottlenecks carry the stride on the 3x3 (v1.5)
  v2 block  BN + ReLU (pre-activation), then the projection of the pre-activation (no BN),
            then conv, BN-ReLU, conv, ..., the last conv without BN, + shortcut
  v2 end    batch_normalization + ReLU before pooling
  head      global average, ``dense`` (kernel, bias), 1001 classes (0 = background)
Every strided convolution pads ``kernel // 2`` before (``fixed_padding``), which is
``layers.conv2d``'s 'fixed' padding; batch norm has momentum 0.997, epsilon 1e-5.
"""
import re

import tensorflow as tf

from resnet_graph.nets import layers

v1 = tf.compat.v1

SCOPE = 'resnet_model'
NUM_CLASSES = 1001
# Official r1's ImageNet preprocessing: RGB 0..255 minus the channel means, no scaling.
MEAN_RGB = (123.68, 116.78, 103.94)


class _Namer(object):
    """tf.layers' automatic names: 'conv2d', 'conv2d_1', ... per layer kind, in creation order.

    ``rows`` maps each name given to the summary row ('stem', 'stage<i>', 'post_norm', 'head') set in ``row``.
    """

    def __init__(self):
        self.counts, self.rows, self.row = {}, {}, 'stem'

    def __call__(self, kind):
        count = self.counts.get(kind, 0)
        self.counts[kind] = count + 1
        name = kind if count == 0 else '%s_%d' % (kind, count)
        self.rows[name] = self.row
        return name


def row_of(net, name):
    """A variable or op name (no outer scope) of an official network -> its summary row, or None."""
    match = re.match(r'%s(?:_\d+)?/([^/]+)/' % SCOPE, name)
    names = getattr(net, '_official_names', None)
    return names.rows.get(match.group(1)) if match and names else None


def _conv(net, names, x, filters, size, stride):
    return net._conv(x, filters, size, stride, names('conv2d'), padding='fixed')


def _bn(net, names, x, relu):
    y = net._bn(x, names('batch_normalization'))
    return tf.nn.relu(y) if relu else y


def _conv_bn(net, names, x, filters, size, stride, relu):
    return net._conv_bn(x, filters, size, stride, names('conv2d'), names('batch_normalization'),
                        padding='fixed', relu=relu)


def _convs(spec, inner, out, stride):
    """(filters, kernel size, stride) of a block's convolutions: the stride on the 3x3 (v1.5)."""
    if spec.block_kind == 'bottleneck':
        return [(inner, 1, 1), (inner, 3, stride), (out, 1, 1)]
    return [(inner, 3, stride), (out, 3, 1)]


def _block_v1(net, names, x, convs, out, stride, project):
    shortcut = _conv_bn(net, names, x, out, 1, stride, relu=False) if project else x
    y = x
    for index, (filters, size, step) in enumerate(convs):
        y = _conv_bn(net, names, y, filters, size, step, relu=index < len(convs) - 1)
    return tf.nn.relu(y + shortcut)


def _block_v2(net, names, x, convs, out, stride, project):
    preact = _bn(net, names, x, relu=True)
    shortcut = _conv(net, names, preact, out, 1, stride) if project else x
    y = preact
    for index, (filters, size, step) in enumerate(convs):
        y = _conv(net, names, y, filters, size, step)
        if index < len(convs) - 1:
            y = _bn(net, names, y, relu=True)
    return y + shortcut


def backbone(net, x):
    """The official r1 stem and stages on ``net`` (variant official_v1|v2): [N, H, W, C] -> [N, h, w, 512|2048].

    Leaves the layer numbering on ``net._official_names`` for ``head``.
    """
    spec = net.spec
    names = net._official_names = _Namer()
    block = _block_v2 if spec.resnet_version == 2 else _block_v1
    with v1.variable_scope(SCOPE):
        x = _conv(net, names, x, spec.stem_width, 7, 2)
        if spec.resnet_version == 1:
            x = _bn(net, names, x, relu=True)
        net.endpoints['stem'] = x = layers.max_pool(x, data_format=net.data_format)
        for stage, (blocks, inner, out) in enumerate(zip(spec.num_blocks, spec.inner_widths, spec.out_widths)):
            names.row = 'stage%d' % (stage + 1)
            stride = 2 if stage > 0 else 1
            for index in range(blocks):
                step = stride if index == 0 else 1
                x = block(net, names, x, _convs(spec, inner, out, step), out, step, project=index == 0)
            net.endpoints['stage%d' % (stage + 1)] = x = tf.identity(x, name='block_layer%d' % (stage + 1))
        if spec.resnet_version == 2:
            names.row = 'post_norm'
            x = _bn(net, names, x, relu=True)
    names.row = 'head'
    return x


def head(net, x):
    """Global average + ``resnet_model/dense``: [N, h, w, C] -> logits [N, num_classes]."""
    with v1.variable_scope(SCOPE):
        x = layers.global_avg_pool(x, data_format=net.data_format)
        return layers.dense(x, net.num_classes, name=net._official_names('dense'))
