"""Graph-mode layers on ``tf.compat.v1.get_variable`` and ``tf.nn``.

TF 2.16+ with Keras 3 has no ``tf.compat.v1.layers``; these few functions
replace what the legacy trainer took from it. Every function creates its
variables under ``tf.compat.v1.variable_scope(name)`` so checkpoints carry
readable names (``stage1/block0/conv1/kernel``) and scopes can be reused.

Convolutions know their shapes when the graph is built and take the cheapest
exact form (see ``conv2d``): at small feature maps TensorFlow's generic CPU
convolution, and above all its input gradient, is far slower than a matrix
multiply doing the same arithmetic.
"""
import tensorflow as tf

v1 = tf.compat.v1

# Taps of a convolution that read at most this many output positions are
# computed as explicit patches + one matrix multiply instead of Conv2D.
SMALL_MAP_POSITIONS = 16


def he_normal():
    """He et al. 2015 initialiser (fan_out, as torchvision's ResNet)."""
    return v1.variance_scaling_initializer(scale=2.0, mode='fan_out', distribution='untruncated_normal')


def _pads(size, kernel, stride):
    """Symmetric-as-possible padding (before, after) and output size of one axis.

    Stride 1 pads like SAME; larger strides pad ``kernel // 2`` before, like
    torchvision and the official TF ResNet's fixed padding, so the result does
    not depend on whether the input size is even.
    """
    if stride == 1:
        total = kernel - 1
        before = total // 2
        return before, total - before, size
    before = kernel // 2
    out = (size + 2 * before - kernel) // stride + 1
    after = max((out - 1) * stride + kernel - size - before, 0)
    return before, after, out


def conv2d(x, filters, kernel_size, stride=1, name='conv', use_bias=False, fast=True):
    """2-D convolution, NHWC.

    Args:
      x: float tensor [N, H, W, C_in], static C_in (H, W may be unknown: then
        the shape-aware forms are off).
      filters: C_out.
      kernel_size: square kernel side k.
      stride: spatial stride s.
      name: variable scope; holds ``kernel`` [k, k, C_in, C_out] (and ``bias``).
      use_bias: add a bias [C_out] (plain ResNets put batch norm after instead).
      fast: take the exact shape-aware form below; False always uses Conv2D.
    Returns:
      [N, H_out, W_out, C_out], H_out = ceil(H / s) for the paddings used here.

    Shape-aware forms (same arithmetic, so the same outputs within float
    rounding): a 1x1 convolution is a strided slice + matrix multiply; a
    convolution whose output has at most SMALL_MAP_POSITIONS positions is the
    concatenation of the taps that ever read real input (taps reading only
    padding are dropped, so a 3x3 on a 1x1 map is its centre tap) + one matrix
    multiply.
    """
    _, height, width, in_channels = x.shape.as_list()
    with v1.variable_scope(name):
        kernel = v1.get_variable('kernel', [kernel_size, kernel_size, in_channels, filters], initializer=he_normal())
        if height is None or width is None:
            return _bias(_unknown_size_conv(x, kernel, stride), filters, use_bias)
        top, bottom, out_h = _pads(height, kernel_size, stride)
        left, right, out_w = _pads(width, kernel_size, stride)
        if fast and kernel_size == 1:
            y = _matmul_nhwc(x[:, ::stride, ::stride, :], tf.reshape(kernel, [in_channels, filters]))
        elif fast and out_h * out_w <= SMALL_MAP_POSITIONS:
            y = _patch_conv(x, kernel, stride, (top, bottom, left, right), (out_h, out_w))
        else:
            if stride > 1 or (top, bottom, left, right) != _same(kernel_size):
                x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
                padding = 'VALID'
            else:
                padding = 'SAME'
            y = tf.nn.conv2d(x, kernel, strides=stride, padding=padding)
        return _bias(y, filters, use_bias)


def _bias(y, filters, use_bias):
    if not use_bias:
        return y
    bias = v1.get_variable('bias', [filters], initializer=v1.zeros_initializer())
    return tf.nn.bias_add(y, bias)


def _unknown_size_conv(x, kernel, stride):
    # kernel // 2 on both sides gives the same outputs as _pads for any size.
    k = kernel.shape[0]
    if stride > 1 and k > 1:
        x = tf.pad(x, [[0, 0], [k // 2, k // 2], [k // 2, k // 2], [0, 0]])
        return tf.nn.conv2d(x, kernel, strides=stride, padding='VALID')
    return tf.nn.conv2d(x, kernel, strides=stride, padding='SAME')


def _same(kernel_size):
    before = (kernel_size - 1) // 2
    return before, kernel_size - 1 - before, before, kernel_size - 1 - before


def _matmul_nhwc(x, matrix):
    """[N, H, W, C_in] x [C_in, C_out] -> [N, H, W, C_out] as one matrix multiply."""
    _, height, width, in_channels = x.shape.as_list()
    y = tf.matmul(tf.reshape(x, [-1, in_channels]), matrix)
    return tf.reshape(y, [-1, height, width, matrix.shape[-1]])


def _patch_conv(x, kernel, stride, pads, out_size):
    """Convolution as explicit patches of the live taps + one matrix multiply."""
    _, height, width, in_channels = x.shape.as_list()
    top, bottom, left, right = pads
    out_h, out_w = out_size
    k = kernel.shape[0]

    def live(tap, before, size, out):
        # Input rows read by this tap over all outputs: tap - before + stride * r.
        return any(0 <= tap - before + stride * r < size for r in range(out))

    taps = [(i, j) for i in range(k) if live(i, top, height, out_h)
            for j in range(k) if live(j, left, width, out_w)]
    padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) if any(pads) else x
    patches = [padded[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride, :]
               for i, j in taps]
    patches = patches[0] if len(patches) == 1 else tf.concat(patches, axis=3)
    matrix = tf.concat([kernel[i, j] for i, j in taps], axis=0) if len(taps) > 1 else kernel[taps[0][0], taps[0][1]]
    return _matmul_nhwc(patches, matrix)


def batch_norm(x, training, name='bn', momentum=0.9, epsilon=1e-5, zero_init=False):
    """Fused batch normalisation over the channel axis of NHWC ``x``.

    Args:
      x: [N, H, W, C] float32.
      training: Python bool, or a scalar bool tensor chosen at run time. When
        training, the batch statistics normalise and the moving averages are
        updated by ops added to ``UPDATE_OPS`` (run them with the train op);
        otherwise the moving averages normalise and nothing changes.
      momentum: moving average decay per training step.
      zero_init: start gamma at 0 (the last BN of a residual branch, so each
        block starts as the identity; Goyal et al. 2017).
    Returns:
      [N, H, W, C].
    """
    channels = x.shape[-1]
    with v1.variable_scope(name):
        gamma = v1.get_variable('gamma', [channels],
                                initializer=v1.zeros_initializer() if zero_init else v1.ones_initializer())
        beta = v1.get_variable('beta', [channels], initializer=v1.zeros_initializer())
        stat_collections = [v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MOVING_AVERAGE_VARIABLES]
        moving_mean = v1.get_variable('moving_mean', [channels], initializer=v1.zeros_initializer(),
                                      trainable=False, collections=stat_collections)
        moving_var = v1.get_variable('moving_variance', [channels], initializer=v1.ones_initializer(),
                                     trainable=False, collections=stat_collections)

        def train_branch():
            return v1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True)

        def infer_branch():
            y, _, _ = v1.nn.fused_batch_norm(x, gamma, beta, mean=moving_mean, variance=moving_var,
                                             epsilon=epsilon, is_training=False)
            return y, tf.identity(moving_mean), tf.identity(moving_var)

        if training is False:
            return infer_branch()[0]
        if training is True:
            y, mean, var = train_branch()
        else:
            y, mean, var = tf.cond(training, train_branch, infer_branch)
        # When not training, mean/var are the moving values and the update is a no-op. A
        # non-finite batch statistic (a NaN batch) leaves the moving value as it was: the
        # update ops run even when the trainer skips that step's weight update.
        for moving, value in ((moving_mean, mean), (moving_var, var)):
            value = tf.where(tf.math.is_finite(value), value, moving)
            v1.add_to_collection(v1.GraphKeys.UPDATE_OPS,
                                 v1.assign_sub(moving, (moving - value) * (1.0 - momentum)))
        return y


def dense(x, units, name='dense'):
    """Fully connected layer: [N, D] -> [N, units], variables ``kernel`` [D, units] and ``bias``."""
    with v1.variable_scope(name):
        kernel = v1.get_variable('kernel', [x.shape[-1], units],
                                 initializer=v1.variance_scaling_initializer(1.0, 'fan_avg', 'uniform'))
        bias = v1.get_variable('bias', [units], initializer=v1.zeros_initializer())
        return tf.nn.bias_add(tf.matmul(x, kernel), bias)


def max_pool(x, size=3, stride=2, name='max_pool'):
    """Max pooling [N, H, W, C] -> [N, ceil(H/stride), ceil(W/stride), C] (SAME)."""
    return tf.nn.max_pool2d(x, size, stride, 'SAME', name=name)


def global_avg_pool(x, name='global_avg_pool'):
    """Mean over the spatial axes: [N, H, W, C] -> [N, C]."""
    return tf.reduce_mean(x, axis=[1, 2], name=name)
