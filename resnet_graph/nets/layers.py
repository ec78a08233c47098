"""Graph-mode layers on ``tf.compat.v1.get_variable`` and ``tf.nn``.

TF 2.16+ with Keras 3 has no ``tf.compat.v1.layers``; these few functions
replace what the legacy trainer took from it. Every function creates its
variables under ``tf.compat.v1.variable_scope(name)`` so checkpoints carry
readable names (``stage1/block0/conv1/kernel``) and scopes can be reused.

``conv2d`` is TensorFlow's Conv2D unless it is given a ``fastconv.ConvPolicy``,
which may pick an exact CPU-tuned form of the same arithmetic from the static shapes.
"""
import tensorflow as tf

import config

v1 = tf.compat.v1


def he_normal():
    """He et al. 2015 initialiser (fan_out, as torchvision's ResNet)."""
    return v1.variance_scaling_initializer(scale=2.0, mode='fan_out', distribution='untruncated_normal')


# Mixed precision (``ResNet(dtype=...)``, ``--dtype``): the variables stay float32 (the master weights) and
# each layer computes in its input's dtype, its kernel and bias cast to it where they are read.
COMPUTE_DTYPES = config.COMPUTE_DTYPES


def cast_to(x, dtype):
    """``x`` cast to ``dtype``, or ``x`` itself (no op added) when it already has that dtype."""
    dtype = tf.as_dtype(dtype)
    return x if x.dtype.base_dtype == dtype else tf.cast(x, dtype)


def _pads(size, kernel, stride, padding='fixed'):
    """Padding (before, after) and output size of one axis.

    'fixed' (resnet_graph's): stride 1 pads like SAME; larger strides pad
    ``kernel // 2`` before, like torchvision and the official TF ResNet's fixed
    padding, so the result does not depend on whether the input size is even.
    'SAME' and 'VALID' are TensorFlow's (the legacy trainer's and Keras's).
    """
    if padding == 'VALID':
        return 0, 0, (size - kernel) // stride + 1
    if stride == 1 or padding == 'SAME':
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2, out
    before = kernel // 2
    out = (size + 2 * before - kernel) // stride + 1
    after = max((out - 1) * stride + kernel - size - before, 0)
    return before, after, out


def conv2d(x, filters, kernel_size, stride=1, name='conv', use_bias=False, policy=None, padding='fixed',
           data_format='NHWC', kernel=None, epilogue=None, inference=False):
    """2-D convolution, NHWC (or NCHW, where everything below reads [N, C, H, W]).

    Args:
      x: float tensor [N, H, W, C_in], static C_in (H, W may be unknown).
      filters: C_out.
      kernel_size: square kernel side k.
      stride: spatial stride s.
      name: variable scope; holds ``kernel`` [k, k, C_in, C_out] (and ``bias``).
      use_bias: add a bias [C_out] (plain ResNets put batch norm after instead).
      policy: None for TensorFlow's Conv2D, or a ``fastconv.ConvPolicy`` that may
        pick an exact CPU-tuned form from the static shapes (NHWC, known H and W).
      padding: 'fixed' (see ``_pads``), 'SAME' or 'VALID'.
      data_format: 'NHWC', or 'NCHW' (always Conv2D: it runs on GPUs only).
      kernel: a tensor [k, k, C_in, C_out] to convolve with instead of the
        ``kernel`` variable (``conv2d_bn_folded`` passes its folded kernel).
      epilogue: None, or a per-channel elementwise function (bias, ReLU) of the
        output; the policy's forms apply it where Grappler can fuse it (use_bias=False).
      inference: the graph never differentiates this convolution (training=False).
    Returns:
      [N, H_out, W_out, C_out], H_out = ceil(H / s) for 'fixed' and 'SAME'.
    """
    if epilogue is not None and use_bias:
        raise ValueError('conv2d: epilogue= needs use_bias=False (add the bias in the epilogue)')
    if data_format == 'NCHW':
        return _then(_conv_nchw(x, filters, kernel_size, stride, name, use_bias, padding, kernel), epilogue)
    _, height, width, in_channels = x.shape.as_list()
    with v1.variable_scope(name):
        kernel = cast_to(_conv_kernel(kernel_size, in_channels, filters) if kernel is None else kernel, x.dtype)
        if height is None or width is None:
            y = (_unknown_size_conv(x, kernel, stride) if padding == 'fixed'
                 else tf.nn.conv2d(x, kernel, strides=stride, padding=padding))
            return _bias(_then(y, epilogue), filters, use_bias)
        top, bottom, out_h = _pads(height, kernel_size, stride, padding)
        left, right, out_w = _pads(width, kernel_size, stride, padding)
        pads = (top, bottom, left, right)
        y = policy and policy.conv(x, kernel, stride, pads, (out_h, out_w), epilogue, inference)
        if y is None:
            y = _then(_plain_conv(x, kernel, stride, pads), epilogue)
        return _bias(y, filters, use_bias)


def _plain_conv(x, kernel, stride, pads):
    """Conv2D of NHWC ``x`` with ``pads`` (top, bottom, left, right); returns [N, H_out, W_out, C_out]."""
    k = kernel.shape[0]
    if stride == 1 and pads == _same(k) and k % 2:
        return tf.nn.conv2d(x, kernel, strides=1, padding='SAME')
    # A Pad op, not Conv2D's explicit padding: TensorFlow's gradients of explicitly padded Conv2D are slower.
    top, bottom, left, right = pads
    if any(pads):
        x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    return tf.nn.conv2d(x, kernel, strides=stride, padding='VALID')


def _bias(y, filters, use_bias, data_format='NHWC'):
    if not use_bias:
        return y
    bias = v1.get_variable('bias', [filters], initializer=v1.zeros_initializer())
    return tf.nn.bias_add(y, cast_to(bias, y.dtype), data_format=data_format)


def _conv_kernel(kernel_size, in_channels, filters):
    """The convolution's ``kernel`` variable [k, k, C_in, C_out] in the current variable scope."""
    return v1.get_variable('kernel', [kernel_size, kernel_size, in_channels, filters], initializer=he_normal())


def _conv_nchw(x, filters, kernel_size, stride, name, use_bias, padding, kernel=None):
    """conv2d for NCHW ``x`` [N, C, H, W]: explicit pads + Conv2D; same variables as NHWC."""
    _, in_channels, height, width = x.shape.as_list()
    with v1.variable_scope(name):
        kernel = cast_to(_conv_kernel(kernel_size, in_channels, filters) if kernel is None else kernel, x.dtype)
        if height is None or width is None:  # as _unknown_size_conv
            same = kernel_size // 2
            if padding == 'fixed' and stride > 1 and kernel_size > 1:
                x, padding = tf.pad(x, [[0, 0], [0, 0], [same, same], [same, same]]), 'VALID'
            y = tf.nn.conv2d(x, kernel, strides=[1, 1, stride, stride], data_format='NCHW',
                             padding='SAME' if padding == 'fixed' else padding)
            return _bias(y, filters, use_bias, 'NCHW')
        top, bottom, _ = _pads(height, kernel_size, stride, padding)
        left, right, _ = _pads(width, kernel_size, stride, padding)
        if any((top, bottom, left, right)):
            x = tf.pad(x, [[0, 0], [0, 0], [top, bottom], [left, right]])
        y = tf.nn.conv2d(x, kernel, strides=[1, 1, stride, stride], padding='VALID', data_format='NCHW')
        return _bias(y, filters, use_bias, 'NCHW')


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


def _then(y, epilogue):
    return y if epilogue is None else epilogue(y)


def batch_norm(x, training, name='bn', momentum=config.TRAIN['bn_momentum'], epsilon=1e-5, zero_init=False,
               data_format='NHWC', cross_replica_sum=None):
    """Fused batch normalisation over the channel axis of NHWC (or NCHW) ``x``.

    Args:
      x: [N, H, W, C] float32.
      training: Python bool, or a scalar bool tensor chosen at run time. When
        training, the batch statistics normalise and the moving averages are
        updated by ops added to ``UPDATE_OPS`` (run them with the train op);
        otherwise the moving averages normalise and nothing changes.
      momentum: moving average decay per training step.
      zero_init: start gamma at 0 (the last BN of a residual branch, so each
        block starts as the identity; Goyal et al. 2017).
      cross_replica_sum: None, or a function (tensor [D], key) -> the sum of
        that tensor over every tower (``towers.CrossTowerSum``): training mode
        then normalises with the statistics of all towers' batches together
        (synchronised batch norm), exactly as one device would on the whole batch.
    Returns:
      [N, H, W, C].
    """
    channels = x.shape[1 if data_format == 'NCHW' else -1]
    with v1.variable_scope(name):
        gamma, beta, moving_mean, moving_var = _bn_variables(channels, zero_init)

        def train_branch():
            if cross_replica_sum is not None:
                return _synchronised_batch_norm(x, gamma, beta, epsilon, data_format, cross_replica_sum)
            return v1.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon, is_training=True, data_format=data_format)

        def infer_branch():
            y, _, _ = v1.nn.fused_batch_norm(x, gamma, beta, mean=moving_mean, variance=moving_var,
                                             epsilon=epsilon, is_training=False, data_format=data_format)
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


def _synchronised_batch_norm(x, gamma, beta, epsilon, data_format, cross_replica_sum):
    """Training-mode batch norm with statistics over every tower's batch.

    Two reductions across the towers (the mean, then the squared deviations
    from it), so the variance is as exact as one device's two-pass one.
    Returns (y like x, mean [C], variance [C] with Bessel's correction, as
    fused_batch_norm returns it for the moving average). A bfloat16 or float16
    ``x`` is normalised in float32 (as fused_batch_norm does) and y cast back.
    """
    axes = [0, 2, 3] if data_format == 'NCHW' else [0, 1, 2]
    key = v1.get_variable_scope().name  # the same in every tower: the towers share their variables
    compute_dtype, x = x.dtype, cast_to(x, tf.float32)
    count = tf.cast(tf.size(x), tf.float32) / float(gamma.shape[0])  # values per channel in this tower
    sums = cross_replica_sum(tf.concat([tf.reduce_sum(x, axes), [count]], 0), key + '/sum')
    total = sums[-1]
    mean = sums[:-1] / total
    shape = [1, -1, 1, 1] if data_format == 'NCHW' else [1, 1, 1, -1]
    centred = x - tf.reshape(mean, shape)
    variance = cross_replica_sum(tf.reduce_sum(tf.square(centred), axes), key + '/squares') / total
    scale = tf.reshape(gamma * tf.math.rsqrt(variance + epsilon), shape)
    y = cast_to(centred * scale + tf.reshape(beta, shape), compute_dtype)
    return y, mean, variance * total / tf.maximum(total - 1.0, 1.0)


def _bn_variables(channels, zero_init):
    """Batch norm's variables [C] in the current variable scope: (gamma, beta, moving_mean, moving_variance)."""
    gamma = v1.get_variable('gamma', [channels],
                            initializer=v1.zeros_initializer() if zero_init else v1.ones_initializer())
    beta = v1.get_variable('beta', [channels], initializer=v1.zeros_initializer())
    stat_collections = [v1.GraphKeys.GLOBAL_VARIABLES, v1.GraphKeys.MOVING_AVERAGE_VARIABLES]
    moving_mean = v1.get_variable('moving_mean', [channels], initializer=v1.zeros_initializer(),
                                  trainable=False, collections=stat_collections)
    moving_var = v1.get_variable('moving_variance', [channels], initializer=v1.ones_initializer(),
                                 trainable=False, collections=stat_collections)
    return gamma, beta, moving_mean, moving_var


def conv2d_bn_folded(x, filters, kernel_size, stride=1, conv_name='conv', bn_name='bn', epsilon=1e-5,
                     zero_init=False, use_bias=False, policy=None, padding='fixed', data_format='NHWC', relu=False):
    """``batch_norm(conv2d(x), training=False)`` computed as one convolution + bias (inference only).

    Batch norm with its moving statistics is affine per channel, so it folds
    into the convolution: kernel * s and bias beta + (conv_bias - mean) * s,
    s = gamma / sqrt(moving_variance + epsilon). The variables are those of
    ``conv2d(name=conv_name)`` then ``batch_norm(name=bn_name)``, created in
    the same order (checkpoints restore either way); only the ops differ, and
    Grappler's remapper fuses the convolution or matrix multiply with the
    bias and, with relu=True, the ReLU after it.
    Arguments as for ``conv2d`` and ``batch_norm``; returns [N, H_out, W_out, C_out].
    """
    in_channels = x.shape[1 if data_format == 'NCHW' else -1]
    with v1.variable_scope(conv_name):
        kernel = _conv_kernel(kernel_size, in_channels, filters)
        conv_bias = v1.get_variable('bias', [filters], initializer=v1.zeros_initializer()) if use_bias else None
    with v1.variable_scope(bn_name):
        gamma, beta, moving_mean, moving_var = _bn_variables(filters, zero_init)
    with tf.name_scope(bn_name + '_folded'):
        scale = gamma * tf.math.rsqrt(moving_var + epsilon)
        shift = beta + ((conv_bias if use_bias else 0.0) - moving_mean) * scale

    def epilogue(y):  # [M, C] from a matrix multiply, else [N, H, W, C] or [N, C, H, W]
        y = tf.nn.bias_add(y, cast_to(shift, y.dtype), data_format=data_format if y.shape.rank == 4 else 'NHWC')
        return tf.nn.relu(y) if relu else y

    return conv2d(x, filters, kernel_size, stride, name=conv_name, policy=policy, padding=padding,
                  data_format=data_format, kernel=kernel * scale, epilogue=epilogue, inference=True)


def dense(x, units, name='dense', initializer=None):
    """Fully connected layer: [N, D] -> [N, units], variables ``kernel`` [D, units] and ``bias``.

    initializer: of the kernel; None is Glorot uniform.
    """
    with v1.variable_scope(name):
        kernel = v1.get_variable('kernel', [x.shape[-1], units],
                                 initializer=initializer or v1.variance_scaling_initializer(1.0, 'fan_avg', 'uniform'))
        bias = v1.get_variable('bias', [units], initializer=v1.zeros_initializer())
        return tf.nn.bias_add(tf.matmul(x, cast_to(kernel, x.dtype)), cast_to(bias, x.dtype))


def max_pool(x, size=3, stride=2, name='max_pool', padding='SAME', data_format='NHWC'):
    """Max pooling [N, H, W, C] -> [N, ceil(H/stride), ceil(W/stride), C] (SAME; VALID: floor((H-size)/stride)+1)."""
    return tf.nn.max_pool2d(x, size, stride, padding, data_format=data_format, name=name)


def global_avg_pool(x, name='global_avg_pool', data_format='NHWC'):
    """Mean over the spatial axes: [N, H, W, C] (or [N, C, H, W]) -> [N, C]."""
    return tf.reduce_mean(x, axis=[2, 3] if data_format == 'NCHW' else [1, 2], name=name)
