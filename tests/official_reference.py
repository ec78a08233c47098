"""An independent float64 NumPy ResNet of tensorflow/models official r1 (v1.5 and v2), the tests' oracle.

Written from official/r1/resnet/resnet_model.py's definition, not from resnet_graph's code:
tf.layers numbers each layer kind in the order the model creates it (the projection
shortcut before the block's convolutions), strided convolutions pad (k-1)//2 before and
the rest after then run VALID, batch norm uses epsilon 1e-5.
"""
import numpy as np

STAGES = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EPSILON = 1e-5


def conv(x, kernel, stride):
    """[N, H, W, C] (*) [k, k, C, D] with official's padding -> [N, H', W', D] (im2col by taps, tensordot)."""
    k = kernel.shape[0]
    if stride > 1:
        before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
    else:
        before = after = (k - 1) // 2
    x = np.pad(x, [(0, 0), (before, after), (before, after), (0, 0)])
    out_h, out_w = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    y = 0
    for i in range(k):
        for j in range(k):
            taps = x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride, :]
            y = y + np.tensordot(taps, kernel[i, j], axes=([3], [0]))
    return y


def max_pool_same(x, size=3, stride=2):
    """TensorFlow's SAME 3x3/2 max-pool (padding with -inf, the extra row and column after)."""
    out_h, out_w = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    pad_h = max((out_h - 1) * stride + size - x.shape[1], 0)
    pad_w = max((out_w - 1) * stride + size - x.shape[2], 0)
    x = np.pad(x, [(0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)],
               constant_values=-np.inf)
    y = np.full((x.shape[0], out_h, out_w, x.shape[3]), -np.inf)
    for i in range(size):
        for j in range(size):
            y = np.maximum(y, x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride, :])
    return y


class Official(object):
    """The family's layers in creation order. ``weights`` None: record (name, shape) only (``self.shapes``).

    mutate: None; 'stride' moves the stride of stage 2's first block from the 3x3 to the first 1x1;
    'drop_bn' skips one batch norm (the second one of the first block) - for the sensitivity tests.
    """

    def __init__(self, version, depth=50, num_classes=1001, weights=None, mutate=None):
        self.version, self.blocks, self.num_classes = version, STAGES[depth], num_classes
        self.weights, self.mutate = weights, mutate
        self.counts, self.shapes, self.bn_seen = {}, [], 0

    def _name(self, kind):
        count = self.counts.get(kind, 0)
        self.counts[kind] = count + 1
        return 'resnet_model/' + (kind if count == 0 else '%s_%d' % (kind, count))

    def _get(self, name, shape):
        self.shapes.append((name, tuple(shape)))
        return None if self.weights is None else self.weights[name]

    def conv(self, x, filters, k, stride):
        kernel = self._get(self._name('conv2d') + '/kernel', (k, k, x.shape[-1], filters))
        return np.zeros(x.shape[:1] + (1, 1, filters)) if kernel is None else conv(x, kernel, stride)

    def bn(self, x, relu):
        scope = self._name('batch_normalization')
        c = x.shape[-1]
        gamma, beta, mean, var = (self._get('%s/%s' % (scope, v), (c,))
                                  for v in ('gamma', 'beta', 'moving_mean', 'moving_variance'))
        self.bn_seen += 1
        if self.weights is not None and not (self.mutate == 'drop_bn' and self.bn_seen == 3):
            x = gamma * (x - mean) / np.sqrt(var + EPSILON) + beta
        return np.maximum(x, 0) if relu else x

    def block(self, x, filters, stride, project):
        strides = (stride, 1) if self.mutate == 'stride' and stride == 2 else (1, stride)
        if self.version == 1:
            shortcut = self.bn(self.conv(x, 4 * filters, 1, stride), False) if project else x
            y = self.bn(self.conv(x, filters, 1, strides[0]), True)
            y = self.bn(self.conv(y, filters, 3, strides[1]), True)
            y = self.bn(self.conv(y, 4 * filters, 1, 1), False)
            return np.maximum(y + shortcut, 0)
        preact = self.bn(x, True)
        shortcut = self.conv(preact, 4 * filters, 1, stride) if project else x
        y = self.bn(self.conv(preact, filters, 1, strides[0]), True)
        y = self.bn(self.conv(y, filters, 3, strides[1]), True)
        return self.conv(y, 4 * filters, 1, 1) + shortcut

    def __call__(self, images):
        """images [N, H, W, 3] (already preprocessed) -> logits [N, num_classes] float64."""
        x = self.conv(np.asarray(images, np.float64), 64, 7, 2)
        if self.version == 1:
            x = self.bn(x, True)
        x = max_pool_same(x) if self.weights is not None else x
        for stage, blocks in enumerate(self.blocks):
            for index in range(blocks):
                x = self.block(x, 64 * 2 ** stage, (2 if stage else 1) if index == 0 else 1, index == 0)
        if self.version == 2:
            x = self.bn(x, True)
        x = x.mean(axis=(1, 2))
        scope = self._name('dense')
        kernel = self._get(scope + '/kernel', (x.shape[-1], self.num_classes))
        bias = self._get(scope + '/bias', (self.num_classes,))
        return None if kernel is None else x @ kernel + bias


def variable_shapes(version, depth=50, num_classes=1001):
    """[(name, shape)] of the family's variables in creation order."""
    net = Official(version, depth, num_classes)
    net(np.zeros((1, 8, 8, 3)))
    return net.shapes


def random_weights(shapes, seed=0):
    """name -> float64 array: He-scaled kernels, BN statistics and affine terms far from 0 and 1."""
    rng = np.random.RandomState(seed)
    weights = {}
    for name, shape in shapes:
        leaf = name.rsplit('/', 1)[1]
        if leaf == 'kernel':
            fan_in = int(np.prod(shape[:-1]))
            weights[name] = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        elif leaf == 'gamma':
            weights[name] = rng.uniform(0.5, 1.5, shape)
        elif leaf in ('beta', 'bias'):
            weights[name] = rng.normal(0, 0.2, shape)
        elif leaf == 'moving_mean':
            weights[name] = rng.normal(0, 0.3, shape)
        else:
            weights[name] = rng.uniform(0.5, 2.0, shape)
    return weights


def write_checkpoint(weights, prefix):
    """Saves ``weights`` (name -> array) as float32 variables of those names with a plain Saver; returns the path."""
    import tensorflow as tf
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        variables = [v1.Variable(value.astype(np.float32), name=name) for name, value in weights.items()]
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            return v1.train.Saver(variables).save(sess, str(prefix), write_meta_graph=False)
