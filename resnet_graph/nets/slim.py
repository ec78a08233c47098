"""``variant='slim_v1'`` / ``'slim_v2'``: TF-Slim's resnet_v1 / resnet_v2 graphs under their own variable names.

A TF-Slim model-zoo checkpoint (``resnet_v1_50.ckpt``, ``resnet_v2_101.ckpt``,
...) then restores by name, with a plain ``tf.compat.v1.train.Saver`` or
through ``ResNet(weights=...)``. The graph (tensorflow/models
research/slim/nets/resnet_v1.py, resnet_v2.py, resnet_utils.py):

  resnet_v<1|2>_<depth>/conv1   7x7/2 ``conv2d_same`` (explicit padding when strided, SAME otherwise);
                                v1: ``weights`` + ``BatchNorm`` + ReLU; v2: ``weights`` + ``biases`` only
  pool1                         3x3/2 max-pool, SAME
  block1..block4/unit_U/bottleneck_v<1|2>
                                1x1 ``conv1``, 3x3 ``conv2`` (``conv2d_same``, carries the unit's stride
                                and atrous rate), 1x1 ``conv3``; the block's stride (2, 2, 2, 1) in its
                                LAST unit; ``shortcut`` a 1x1 conv where the depth changes (unit_1), else
                                the input subsampled by the unit's stride (1x1 max-pool).
                                v1: each conv with ``BatchNorm`` (no biases), ReLU after the sum;
                                v2: ``preact`` BN+ReLU first, the shortcut conv (from the pre-activation)
                                and ``conv3`` with ``biases`` and no BN, no ReLU after the sum
  postnorm                      v2 only: BN + ReLU
  logits                        1x1 conv with ``biases`` on the global average, squeezed to [N, classes]
                                (the zoo's v1 has 1000 classes, v2 1001: class 0 is background)
Batch norm: epsilon 1e-5, with gamma (slim's resnet_arg_scope); its decay is the network's bn_momentum.
``output_stride`` (4, 8, 16 or 32) is slim's dense-prediction mode (``unit_plan``).
The network applies no preprocessing: feed what the family's preprocessing gives.
"""
import tensorflow as tf

from resnet_graph.nets import layers

v1 = tf.compat.v1

BLOCK_STRIDES = (2, 2, 2, 1)  # of block1..block4, applied in each block's last unit
STEM_STRIDE = 4  # conv1 and pool1


def scope_name(spec):
    """The Slim scope of a resolved ``variants.Spec``: 'resnet_v1_50', 'resnet_v2_101', ..."""
    return 'resnet_%s_%d' % (spec.variant.split('_')[1], spec.depth)


def unit_plan(num_blocks, output_stride=None):
    """Stride and atrous rate of every unit, as slim's ``resnet_utils.stack_blocks_dense`` sets them.

    Once the cumulative stride (after the stem's 4) reaches ``output_stride``,
    every later unit runs with stride 1 and its 3x3 with the current rate,
    and the rate grows by the stride the unit would have had.

    Args:
      num_blocks: units per block, e.g. (3, 4, 6, 3).
      output_stride: None (the nominal 32) or 4, 8, 16, 32.
    Returns:
      list per block of lists per unit of (stride, rate).
    Raises:
      ValueError: output_stride cannot be reached.
    """
    target = None if output_stride is None else output_stride // STEM_STRIDE
    current, rate, plan = 1, 1, []
    for units, block_stride in zip(num_blocks, BLOCK_STRIDES):
        block = []
        for index in range(units):
            stride = block_stride if index == units - 1 else 1
            if target is not None and current == target:
                block.append((1, rate))
                rate *= stride
            else:
                block.append((stride, 1))
                current *= stride
        plan.append(block)
    if target is not None and current != target:
        raise ValueError('output_stride=%r cannot be reached' % (output_stride,))
    return plan


def _channels(net, x):
    return x.shape[1 if net.data_format == 'NCHW' else -1]


def conv(net, x, filters, size, stride=1, rate=1, name='conv', biases=False, batch_norm=False, relu=False,
         zero_init=False):
    """slim.conv2d / resnet_utils.conv2d_same: [N, H, W, C] -> [N, ceil(H/stride), ceil(W/stride), filters].

    Variables ``name/weights`` [size, size, C, filters], ``name/biases``
    [filters] with biases=True, ``name/BatchNorm/{gamma,beta,moving_mean,moving_variance}``
    with batch_norm=True. A strided convolution wider than 1x1 pads
    explicitly (pad_total = effective size - 1, the smaller half first) and
    runs VALID; every other one runs SAME (the atrous ones too).
    Args: net: the ResNet (data format, dtype, BN settings); zero_init: BN gamma starts at 0.
    Returns: the output tensor (NCHW when the network is).
    """
    nchw = net.data_format == 'NCHW'
    with v1.variable_scope(name):
        weights = v1.get_variable('weights', [size, size, _channels(net, x), filters],
                                  initializer=v1.variance_scaling_initializer(2.0, 'fan_in', 'truncated_normal'))
        padding = 'SAME'
        if stride > 1 and size > 1:
            total = (size - 1) * rate
            spatial = [[total // 2, total - total // 2]] * 2
            x = tf.pad(x, [[0, 0], [0, 0]] + spatial if nchw else [[0, 0]] + spatial + [[0, 0]])
            padding = 'VALID'
        y = tf.nn.convolution(x, layers.cast_to(weights, x.dtype), strides=stride, padding=padding,
                              dilations=rate, data_format=net.data_format)
        if biases:
            bias = v1.get_variable('biases', [filters], initializer=v1.zeros_initializer())
            y = tf.nn.bias_add(y, layers.cast_to(bias, y.dtype), data_format=net.data_format)
        if batch_norm:
            y = net._bn(y, 'BatchNorm', zero_init)
        return tf.nn.relu(y) if relu else y


def subsample(net, x, stride):
    """resnet_utils.subsample: ``x`` for stride 1, else a 1x1 max-pool of that stride: [N, ceil(H/s), ceil(W/s), C]."""
    if stride == 1:
        return x
    return layers.max_pool(x, 1, stride, name='shortcut', data_format=net.data_format)


def bottleneck_v1(net, x, depth, inner, stride, rate):
    """One post-activation unit: [N, H, W, C] -> [N, H/stride, W/stride, depth] (scope ``bottleneck_v1``)."""
    with v1.variable_scope('bottleneck_v1'):
        if _channels(net, x) == depth:
            shortcut = subsample(net, x, stride)
        else:
            shortcut = conv(net, x, depth, 1, stride, name='shortcut', batch_norm=True)
        y = conv(net, x, inner, 1, name='conv1', batch_norm=True, relu=True)
        y = conv(net, y, inner, 3, stride, rate, name='conv2', batch_norm=True, relu=True)
        y = conv(net, y, depth, 1, name='conv3', batch_norm=True, zero_init=net.zero_init_residual)
        return tf.nn.relu(tf.add(shortcut, y, name='residual'))


def bottleneck_v2(net, x, depth, inner, stride, rate):
    """One pre-activation unit: [N, H, W, C] -> [N, H/stride, W/stride, depth] (scope ``bottleneck_v2``)."""
    with v1.variable_scope('bottleneck_v2'):
        preact = tf.nn.relu(net._bn(x, 'preact'))
        if _channels(net, x) == depth:
            shortcut = subsample(net, x, stride)
        else:
            shortcut = conv(net, preact, depth, 1, stride, name='shortcut', biases=True)
        y = conv(net, preact, inner, 1, name='conv1', batch_norm=True, relu=True)
        y = conv(net, y, inner, 3, stride, rate, name='conv2', batch_norm=True, relu=True)
        y = conv(net, y, depth, 1, name='conv3', biases=True)
        return tf.add(shortcut, y, name='residual')


def backbone(net, x):
    """The Slim stem and blocks on ``net`` (a ResNet with a slim variant).

    Args:
      net: the ResNet; x: [N, H, W, C] in its compute dtype (NCHW when the network is).
    Returns:
      the last feature map [N, H/s, W/s, 2048], s = output_stride (32 by default); v2 after ``postnorm``.
      ``net.endpoints``: 'stem' (after pool1), 'stage1'..'stage4' (the blocks' outputs).
    """
    spec = net.spec
    is_v2 = spec.variant == 'slim_v2'
    with v1.variable_scope(scope_name(spec)) as scope:
        net.slim_scope = scope  # the head re-enters it: ``logits`` sits beside the blocks
        x = conv(net, x, spec.stem_width, 7, 2, name='conv1', biases=is_v2, batch_norm=not is_v2, relu=not is_v2)
        x = layers.max_pool(x, 3, 2, name='pool1', data_format=net.data_format)
        net.endpoints['stem'] = x
        unit = bottleneck_v2 if is_v2 else bottleneck_v1
        plan = unit_plan(spec.num_blocks, spec.output_stride)
        for block, (units, inner, out) in enumerate(zip(plan, spec.inner_widths, spec.out_widths), 1):
            with v1.variable_scope('block%d' % block):
                for index, (stride, rate) in enumerate(units, 1):
                    with v1.variable_scope('unit_%d' % index):
                        x = unit(net, x, out, inner, stride, rate)
                net.endpoints['stage%d' % block] = x = tf.identity(x, name='output')
        if is_v2:  # the last unit's sum is not normalised yet
            x = tf.nn.relu(net._bn(x, 'postnorm'))
    return x


def head(net, x):
    """Global average (``pool5``) + the 1x1 ``logits`` conv with biases: [N, h, w, C] -> [N, num_classes]."""
    scope = net.slim_scope
    with v1.variable_scope(scope, auxiliary_name_scope=False), tf.name_scope(scope.original_name_scope):
        x = tf.reduce_mean(x, axis=net._spatial_axes, keepdims=True, name='pool5')
        x = conv(net, x, net.num_classes, 1, name='logits', biases=True)
        return tf.squeeze(x, net._spatial_axes, name='SpatialSqueeze')
