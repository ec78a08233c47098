"""The exact CPU-tuned forms a convolution can take, and the two gradients they register.

Each form does the same arithmetic as a Conv2D of the same kernel, so the same outputs and gradients within
float rounding; ``ConvPolicy`` (policy.py) picks one from the convolution's static shapes. Tensors are NHWC.
"""
import tensorflow as tf

# The gradient given to stride-1 Conv2D ops (``_conv_grads_as_forward_convs``).
FORWARD_GRADIENT = 'ResnetGraphConvGradsAsForwardConvs'

# The gradient given to the matrix multiplies of small maps (``_few_rows_matmul_grads``).
FEW_ROWS_GRADIENT = 'ResnetGraphFewRowsMatMulGrads'


def then(y, epilogue):
    """``epilogue(y)``, or y when epilogue is None."""
    return y if epilogue is None else epilogue(y)


def conv_same(x, kernel, forward_gradient=True):
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
    """The gradients of a ``conv_same`` op as two forward convolutions: (dx like x, dkernel like kernel).

    The input gradient of a stride-1 SAME convolution with an odd kernel is
    the SAME convolution of dy [N, H, W, C_out] with the kernel flipped in
    space and its channel axes swapped; the kernel gradient is the VALID
    convolution of the padded input taken as [C_in, H + k - 1, W + k - 1, N]
    (the batch as channels) with dy taken as a kernel [H, W, N, C_out]. The
    same sums as Conv2DBackpropInput and Conv2DBackpropFilter, which are
    slower than a forward Conv2D of the same size on CPUs without AVX-512.
    The padding is the convolution's own (explicit), not a Pad op (faster here).
    """
    x, kernel = op.inputs
    half = kernel.shape[0] // 2
    # The copies wait for dy: else they are made in the forward pass and held to the step's memory peak.
    with tf.control_dependencies([dy]):
        flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        x_by_channel = tf.transpose(x, [3, 1, 2, 0])
    dx = tf.nn.conv2d(dy, flipped, strides=1, padding='SAME')
    dkernel = tf.nn.conv2d(x_by_channel, tf.transpose(dy, [1, 2, 0, 3]), strides=1,
                           padding=[[0, 0], [half, half], [half, half], [0, 0]])
    return dx, tf.transpose(dkernel, [1, 2, 0, 3])


def strided_taps(x, taps, stride, out_size):
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


def matmul_nhwc(x, matrix, epilogue=None, few_rows=False):
    """[N, H, W, C_in] x [C_in, C_out] -> [N, H, W, C_out] as one matrix multiply (+ ``epilogue`` on [M, C_out]).

    few_rows: give the multiply the gradient ``_few_rows_matmul_grads``.
    """
    _, height, width, in_channels = x.shape.as_list()
    y = then(_matmul(tf.reshape(x, [-1, in_channels]), matrix, few_rows), epilogue)
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
    is the slower one on CPU when M is small, as for the matrix multiplies of
    small maps (1x1 maps: M is the batch).
    """
    a, b = op.inputs
    return tf.transpose(tf.matmul(b, dy, transpose_b=True)), tf.matmul(a, dy, transpose_a=True)


def patch_conv(x, kernel, stride, pads, out_size, epilogue=None, few_rows=False, whole_map=True):
    """Convolution as explicit patches of the live taps + one matrix multiply (or, when ``whole_map``,
    ``_whole_map_conv`` where the map has fewer positions than live taps: it then needs fewer multiplies)."""
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
    if whole_map and height * width < len(taps):  # fewer multiplies as one whole-map product (see _whole_map_conv)
        return _whole_map_conv(x, kernel, stride, (top, left), out_size, epilogue, few_rows)
    padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) if any(pads) else x
    patches = strided_taps(padded, taps, stride, out_size)
    patches = patches[0] if len(patches) == 1 else tf.concat(patches, axis=3)
    # One Slice of the kernel (its gradient is a Pad), in the taps' order: [taps * C_in, C_out].
    matrix = tf.reshape(tf.slice(kernel, [rows[0], cols[0], 0, 0], [len(rows), len(cols), -1, -1]),
                        [-1, kernel.shape[-1]])
    return matmul_nhwc(patches, matrix, epilogue, few_rows)


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
    return tf.reshape(then(tf.reshape(y, [-1, filters]), epilogue), [-1, out_h, out_w, filters])
