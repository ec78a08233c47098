"""Graph-mode layers on ``tf.compat.v1.get_variable`` and ``tf.nn``.

TF 2.16+ with Keras 3 has no ``tf.compat.v1.layers``; these few functions
replace what the legacy trainer took from it. Every function creates its
variables under ``tf.compat.v1.variable_scope(name)`` so checkpoints carry
readable names (``stage1/block0/conv1/kernel``) and scopes can be reused.

Convolutions know their shapes when the graph is built and take the cheapest
exact form (see ``conv2d``): at small feature maps TensorFlow's generic CPU
convolution, and above all its input gradient, is far slower than a matrix
multiply doing the same arithmetic, and at every size its two gradient ops
are slower than forward convolutions doing the same sums.
"""
import tensorflow as tf

import config
from resnet_graph.fastconv import cpu

v1 = tf.compat.v1

# A convolution with at most this many output positions is computed as explicit patches of its live
# taps + one matrix multiply instead of Conv2D (see ``conv2d``). 4: outputs up to 2x2 (a 3x3 on a 1x1 map is
# its centre tap; on a 2x2 map every output reads every input). ResNet-50 32x32 batch 128 training on the
# 2-core AVX2 CPU of the README's Performance: 1.39 s a step with 4, 1.44 with 1 and 1.45 with 16.
SMALL_MAP_POSITIONS = 4

# The gradient that ``conv2d`` gives its stride-1 Conv2D ops (``_conv_grads_as_forward_convs``).
FORWARD_GRADIENT = 'ResnetGraphConvGradsAsForwardConvs'

# The gradient that ``conv2d`` gives the matrix multiplies of small maps (``_few_rows_matmul_grads``).
FEW_ROWS_GRADIENT = 'ResnetGraphFewRowsMatMulGrads'


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


def conv2d(x, filters, kernel_size, stride=1, name='conv', use_bias=False, fast=True, padding='fixed',
           data_format='NHWC', kernel=None, epilogue=None, inference=False):
    """2-D convolution, NHWC (or NCHW, where everything below reads [N, C, H, W]).

    Args:
      x: float tensor [N, H, W, C_in], static C_in (H, W may be unknown: then
        the shape-aware forms are off).
      filters: C_out.
      kernel_size: square kernel side k.
      stride: spatial stride s.
      name: variable scope; holds ``kernel`` [k, k, C_in, C_out] (and ``bias``).
      use_bias: add a bias [C_out] (plain ResNets put batch norm after instead).
      fast: take the exact shape-aware form below; False always uses Conv2D.
      padding: 'fixed' (see ``_pads``), 'SAME' or 'VALID'.
      data_format: 'NHWC', or 'NCHW' (always Conv2D: it runs on GPUs only).
      kernel: a tensor [k, k, C_in, C_out] to convolve with instead of the
        ``kernel`` variable (``conv2d_bn_folded`` passes its folded kernel).
      epilogue: None, or a per-channel elementwise function (bias, ReLU) of
        the output, applied to the matrix multiply's [M, C_out] result where
        there is one, so Grappler's remapper can fuse it (use_bias=False).
      inference: the graph never differentiates this convolution (a network
        built with training=False): 1x1 convolutions with more than
        SMALL_MAP_POSITIONS outputs then stay Conv2D, which Grappler fuses
        with the batch norm and ReLU after it; a matrix multiply is the faster
        form only where its gradients count (see the README's Performance).
    Returns:
      [N, H_out, W_out, C_out], H_out = ceil(H / s) for 'fixed' and 'SAME'.

    Shape-aware forms (same arithmetic, so the same outputs and gradients
    within float rounding): a 1x1 convolution is a subsample + matrix
    multiply; a convolution whose output has at most SMALL_MAP_POSITIONS
    positions is the concatenation of the taps that ever read real input
    (taps reading only padding are dropped, so a 3x3 on a 1x1 map is its
    centre tap) + one matrix multiply, or where the map has fewer positions
    than live taps (a 3x3 on 2x2) one multiply of the whole map by a matrix
    of the kernel's taps (``_whole_map_conv``); any other stride-1 convolution with an
    odd kernel is Conv2D whose two gradients are forward convolutions too
    (``_conv_grads_as_forward_convs``) where ``forward_conv_gradients()`` says so. Subsamples and taps are slices of a
    reshaped tensor, never strided slices (``_strided_taps``).
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
        small_map = out_h * out_w <= SMALL_MAP_POSITIONS
        few_rows = small_map and not inference  # its multiply has SMALL_MAP_POSITIONS rows per image or fewer
        if fast and kernel_size == 1 and (small_map or not inference):
            x = _strided_taps(x, [(0, 0)], stride, (out_h, out_w))[0]
            y = _matmul_nhwc(x, tf.reshape(kernel, [in_channels, filters]), epilogue, few_rows)
        elif fast and small_map:
            y = _patch_conv(x, kernel, stride, (top, bottom, left, right), (out_h, out_w), epilogue, few_rows)
        elif stride == 1 and (top, bottom, left, right) == _same(kernel_size) and kernel_size % 2:
            forward_gradient = fast and not inference and forward_conv_gradients()
            y = _then(_conv_same(x, kernel, forward_gradient=forward_gradient), epilogue)
        else:
            # A Pad op, not the convolution's explicit padding: TensorFlow gives explicitly padded convolutions
            # gradient kernels that were 9-18 % of a step slower on the Zen 5 AVX-512 CPU (ResNet-50 32x32
            # batch 128, ResNet-18 128x128 batch 32), for 1-5 % per op on the AVX2 CPU (README Performance).
            if any((top, bottom, left, right)):
                x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
            y = _then(tf.nn.conv2d(x, kernel, strides=stride, padding='VALID'), epilogue)
        return _bias(y, filters, use_bias)


def forward_conv_gradients():
    """Whether training graphs give stride-1 convolutions ``_conv_grads_as_forward_convs``
    (``config.FORWARD_CONV_GRADIENTS``: 'auto' is True where the CPU lacks AVX-512)."""
    return cpu.enabled('FORWARD_CONV_GRADIENTS')


def _conv_same(x, kernel, forward_gradient=True):
    """Stride-1 SAME Conv2D of NHWC ``x`` [N, H, W, C_in] with ``kernel`` [k, k, C_in, C_out], k odd.

    forward_gradient: give the op the gradient ``_conv_grads_as_forward_convs``
    (False: TensorFlow's own, Conv2DBackpropInput and Conv2DBackpropFilter).
    The forward op is the same either way. Returns [N, H, W, C_out].
    """
    if not forward_gradient:
        return tf.nn.conv2d(x, kernel, strides=1, padding='SAME')
    with tf.compat.v1.get_default_graph().gradient_override_map({'Conv2D': FORWARD_GRADIENT}):
        return tf.nn.conv2d(x, kernel, strides=1, padding='SAME')


@tf.RegisterGradient(FORWARD_GRADIENT)
def _conv_grads_as_forward_convs(op, dy):
    """The gradients of a ``_conv_same`` op as two forward convolutions: (dx like x, dkernel like kernel).

    The input gradient of a stride-1 SAME convolution with an odd kernel is
    the SAME convolution of dy [N, H, W, C_out] with the kernel flipped in
    space and its channel axes swapped; the kernel gradient is the VALID
    convolution of the padded input taken as [C_in, H + k - 1, W + k - 1, N]
    (the batch as channels) with dy taken as a kernel [H, W, N, C_out]. The
    same sums as Conv2DBackpropInput and Conv2DBackpropFilter, which on the
    CPUs measured (README, Performance) are up to 7x and 1.3x slower than a
    forward Conv2D of the same size, most of all on small feature maps. The
    padding is the convolution's own (explicit), not a Pad op: 8-22 % faster.
    """
    x, kernel = op.inputs
    half = kernel.shape[0] // 2
    # The copies of x and of the kernel wait for dy: needing only forward tensors, they would otherwise be
    # made during the forward pass and held until the backward pass reaches this convolution, a second copy
    # of every such input at the step's memory peak (ResNet-50 224x224 batch 16: peak tensor memory 2,149
    # -> 2,079 MB for the copies of x).
    with tf.control_dependencies([dy]):
        flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        x_by_channel = tf.transpose(x, [3, 1, 2, 0])
    dx = tf.nn.conv2d(dy, flipped, strides=1, padding='SAME')
    dkernel = tf.nn.conv2d(x_by_channel, tf.transpose(dy, [1, 2, 0, 3]), strides=1,
                           padding=[[0, 0], [half, half], [half, half], [0, 0]])
    return dx, tf.transpose(dkernel, [1, 2, 0, 3])


def _strided_taps(x, taps, stride, out_size):
    """Each tap (i, j) of ``taps``: x[:, i::stride, j::stride, :] cut to ``out_size`` (out_h, out_w).

    x: [N, H, W, C] of known H, W, covering every position the taps read.
    Returns a list of [N, out_h, out_w, C]. Built from Pad, Reshape and Slice
    (stride s: x viewed as [N, H/s, s, W/s, s, C], each tap one Slice), whose
    gradients are Slice, Reshape and Pad: a strided slice's gradient is a
    StridedSliceGrad per tap, a large share of a small-map training step on CPU.
    """
    out_h, out_w = out_size
    if stride == 1:
        return [tf.slice(x, [0, i, j, 0], [-1, out_h, out_w, -1]) for i, j in taps]
    _, height, width, channels = x.shape.as_list()
    rows = stride * max(-(-height // stride), max(i for i, _ in taps) // stride + out_h)
    cols = stride * max(-(-width // stride), max(j for _, j in taps) // stride + out_w)
    if (rows, cols) != (height, width):
        x = tf.pad(x, [[0, 0], [0, rows - height], [0, cols - width], [0, 0]])
    view = tf.reshape(x, [-1, rows // stride, stride, cols // stride, stride, channels])
    return [tf.reshape(tf.slice(view, [0, i // stride, i % stride, j // stride, j % stride, 0],
                                [-1, out_h, 1, out_w, 1, -1]), [-1, out_h, out_w, channels])
            for i, j in taps]


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


def _matmul_nhwc(x, matrix, epilogue=None, few_rows=False):
    """[N, H, W, C_in] x [C_in, C_out] -> [N, H, W, C_out] as one matrix multiply (+ ``epilogue`` on [M, C_out]).

    few_rows: give the multiply the gradient ``_few_rows_matmul_grads``.
    """
    _, height, width, in_channels = x.shape.as_list()
    y = _then(_matmul(tf.reshape(x, [-1, in_channels]), matrix, few_rows), epilogue)
    return tf.reshape(y, [-1, height, width, matrix.shape[-1]])


def _matmul(a, b, few_rows=False):
    """tf.matmul(a, b) of a [M, K] and b [K, N]; few_rows: with the gradient ``_few_rows_matmul_grads``."""
    if not few_rows:
        return tf.matmul(a, b)
    with tf.compat.v1.get_default_graph().gradient_override_map({'MatMul': FEW_ROWS_GRADIENT}):
        return tf.matmul(a, b)


@tf.RegisterGradient(FEW_ROWS_GRADIENT)
def _few_rows_matmul_grads(op, dy):
    """The gradients of y = a @ b, a [M, K], b [K, N], for a small M: (da [M, K], db [K, N]).

    da is computed transposed, (b @ dy^T)^T: TensorFlow's own form, dy @ b^T,
    runs 2-8x slower on the CPU of the README's Performance when M is 512 or
    fewer (at M = 1024 the two tie), and the matrix multiplies of small maps
    (1x1 maps: M is the batch) are where that happens.
    """
    a, b = op.inputs
    return tf.transpose(tf.matmul(b, dy, transpose_b=True)), tf.matmul(a, dy, transpose_a=True)


def _patch_conv(x, kernel, stride, pads, out_size, epilogue=None, few_rows=False):
    """Convolution as explicit patches of the live taps + one matrix multiply (or ``_whole_map_conv``, where
    the map has fewer positions than live taps: it then needs fewer multiplies)."""
    _, height, width, in_channels = x.shape.as_list()
    top, bottom, left, right = pads
    out_h, out_w = out_size
    k = kernel.shape[0]

    def live(before, size, out):
        # The taps that read real input for some output: tap - before + stride * r in [0, size). They are
        # contiguous (gaps would need stride > size, and then there is one output), so the live taps of
        # both axes form a rectangle of the kernel.
        return [t for t in range(k) if any(0 <= t - before + stride * r < size for r in range(out))]

    rows, cols = live(top, height, out_h), live(left, width, out_w)
    taps = [(i, j) for i in rows for j in cols]
    if height * width < len(taps):  # fewer multiplies as one whole-map product (see _whole_map_conv)
        return _whole_map_conv(x, kernel, stride, (top, left), out_size, epilogue, few_rows)
    padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) if any(pads) else x
    patches = _strided_taps(padded, taps, stride, out_size)
    patches = patches[0] if len(patches) == 1 else tf.concat(patches, axis=3)
    # One Slice of the kernel (its gradient is a Pad), in the taps' order: [taps * C_in, C_out].
    matrix = tf.reshape(tf.slice(kernel, [rows[0], cols[0], 0, 0], [len(rows), len(cols), -1, -1]),
                        [-1, kernel.shape[-1]])
    return _matmul_nhwc(patches, matrix, epilogue, few_rows)


def _whole_map_conv(x, kernel, stride, pads_before, out_size, epilogue=None, few_rows=False):
    """Convolution as one matrix multiply of the whole map: [N, H * W * C_in] x [H * W * C_in, H_out * W_out * C_out].

    The matrix holds, for each input and output position, the kernel tap
    joining them, or zeros where the output does not read that input: H * W
    products per output position and channel pair, against the patches' one
    per live tap (which include the padding). A 3x3 on a 2x2 map: 16 against
    36. pads_before: (top, left) padding. Returns [N, H_out, W_out, C_out].
    """
    _, height, width, in_channels = x.shape.as_list()
    top, left = pads_before
    out_h, out_w = out_size
    k, filters = kernel.shape[0], kernel.shape[-1]
    unread = k * k  # the index of an all-zero tap

    def tap(i, j, r, c):
        ti, tj = i + top - stride * r, j + left - stride * c
        return ti * k + tj if 0 <= ti < k and 0 <= tj < k else unread

    index = [tap(i, j, r, c) for i in range(height) for j in range(width) for r in range(out_h) for c in range(out_w)]
    table = tf.concat([tf.reshape(kernel, [unread, in_channels, filters]),
                       tf.zeros([1, in_channels, filters], kernel.dtype)], axis=0)
    blocks = tf.reshape(tf.gather(table, index), [height * width, out_h * out_w, in_channels, filters])
    matrix = tf.reshape(tf.transpose(blocks, [0, 2, 1, 3]), [height * width * in_channels, -1])
    y = _matmul(tf.reshape(x, [-1, height * width * in_channels]), matrix, few_rows)
    return tf.reshape(_then(tf.reshape(y, [-1, filters]), epilogue), [-1, out_h, out_w, filters])


def batch_norm(x, training, name='bn', momentum=0.9, epsilon=1e-5, zero_init=False, data_format='NHWC',
               cross_replica_sum=None):
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
                     zero_init=False, use_bias=False, fast=True, padding='fixed', data_format='NHWC', relu=False):
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

    return conv2d(x, filters, kernel_size, stride, name=conv_name, fast=fast, padding=padding,
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
