"""``ResNet(depth)``: the residual network of He et al. 2015 as a ``tf.compat.v1`` graph.

One table of stage sizes, one function per block kind. Variables are named
like the paper's table: ``stem/conv``, ``stage1/block0/conv1``,
``stage1/block0/shortcut/conv``, ``head/dense``. The tensors a caller needs
have stable graph names: ``input_x``, ``input_y``, ``is_training``,
``logits``, ``probabilities``, ``predictions``.
"""
import tensorflow as tf

from resnet_graph import layers

v1 = tf.compat.v1

# depth -> (block kind, blocks per stage)
STAGES = {
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4


def check_depth(depth):
    """Raises ValueError naming the valid depths when ``depth`` is not one of them."""
    if depth not in STAGES:
        raise ValueError('depth %r is not supported; valid depths: %s'
                         % (depth, ', '.join(str(d) for d in sorted(STAGES))))


class ResNet(object):
    """Builds a ResNet classifier in the current default graph.

    Args:
      depth: 18, 34 (basic blocks) or 50, 101, 152 (bottlenecks).
      num_classes: width of the logits.
      height, width, channels: the input image shape.
      inputs: optional float32 tensor [N, height, width, channels]; ``input_x``
        then defaults to it (still feedable), e.g. a ``tf.data`` pipeline.
      labels: optional int64 tensor [N], the same for ``input_y``.
      training: None for an ``is_training`` placeholder (default False), or a
        Python bool to fix the batch-norm mode when the graph is built.
      weight_decay: L2 factor on conv and dense kernels (not BN, not biases).
      bn_momentum: decay of the batch-norm moving averages per step.
      zero_init_residual: start the last BN gamma of every block at 0.
      fast_conv: use the exact shape-aware convolutions of ``layers.conv2d``.

    Attributes (tensors): input_x [N,H,W,C] float32, input_y [N] int64,
    is_training scalar bool, logits [N, num_classes], probabilities
    [N, num_classes], predictions [N] int64 (argmax over classes),
    cross_entropy (mean, scalar), regularization_loss (scalar), loss
    (cross_entropy + regularization_loss), accuracy (scalar), top5_accuracy
    (scalar; top-min(5, num_classes)).
    """

    def __init__(self, depth=50, num_classes=10, height=32, width=32, channels=1, inputs=None, labels=None,
                 training=None, weight_decay=0.0, bn_momentum=0.9, zero_init_residual=True, fast_conv=True):
        check_depth(depth)
        self.depth = depth
        self.num_classes = num_classes
        self.block_kind, self.num_blocks = STAGES[depth]
        self.weight_decay = weight_decay
        self.bn_momentum = bn_momentum
        self.zero_init_residual = zero_init_residual
        self.fast_conv = fast_conv
        shape = [None, height, width, channels]
        if inputs is None:
            self.input_x = v1.placeholder(tf.float32, shape, name='input_x')
        else:
            self.input_x = v1.placeholder_with_default(inputs, shape, name='input_x')
        if labels is None:
            self.input_y = v1.placeholder(tf.int64, [None], name='input_y')
        else:
            self.input_y = v1.placeholder_with_default(labels, [None], name='input_y')
        if training is None:
            self.is_training = v1.placeholder_with_default(False, [], name='is_training')
            training = self.is_training
        else:
            self.is_training = tf.constant(training, name='is_training')
        self._training = training
        self.logits = tf.identity(self.build(self.input_x), name='logits')
        self._build_outputs()

    @classmethod
    def from_config(cls, cfg, **kwargs):
        """Builds the network a run's configuration (``config.json``) describes; kwargs as for __init__."""
        size = cfg['image_size']
        return cls(cfg['depth'], cfg['num_classes'], size, size, cfg['channels'], weight_decay=cfg['weight_decay'],
                   bn_momentum=cfg['bn_momentum'], **kwargs)

    # -- network -----------------------------------------------------------------

    def build(self, x):
        """Stem, the four stages, head: [N, H, W, C] -> logits [N, num_classes]."""
        with v1.variable_scope('stem'):
            x = self._conv_bn(x, 64, 7, 2, 'conv', 'bn')
            x = tf.nn.relu(x)
            x = layers.max_pool(x)
        x = self.stack_block(x)
        with v1.variable_scope('head'):
            x = layers.global_avg_pool(x)
            return layers.dense(x, self.num_classes, weight_decay=self.weight_decay)

    def stack_block(self, x):
        """The four residual stages: [N, H, W, 64] -> [N, H/8, W/8, 512 or 2048]."""
        block = self.bottleneck_block if self.block_kind == 'bottleneck' else self.basic_block
        for stage, (blocks, width) in enumerate(zip(self.num_blocks, STAGE_WIDTHS)):
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                with v1.variable_scope('stage%d/block%d' % (stage + 1, index)):
                    x = block(x, width, stride)
        return x

    def basic_block(self, x, width, stride):
        """Two 3x3 convolutions; output channels ``width``."""
        shortcut = self._shortcut(x, width, stride)
        y = tf.nn.relu(self._conv_bn(x, width, 3, stride, 'conv1', 'bn1'))
        y = self._conv_bn(y, width, 3, 1, 'conv2', 'bn2', zero_init=self.zero_init_residual)
        return tf.nn.relu(y + shortcut)

    def bottleneck_block(self, x, width, stride):
        """1x1 reduce, 3x3 (carrying the stride, as in v1.5), 1x1 expand; output 4 * ``width``."""
        out = width * BOTTLENECK_EXPANSION
        shortcut = self._shortcut(x, out, stride)
        y = tf.nn.relu(self._conv_bn(x, width, 1, 1, 'conv1', 'bn1'))
        y = tf.nn.relu(self._conv_bn(y, width, 3, stride, 'conv2', 'bn2'))
        y = self._conv_bn(y, out, 1, 1, 'conv3', 'bn3', zero_init=self.zero_init_residual)
        return tf.nn.relu(y + shortcut)

    def _shortcut(self, x, out, stride):
        """Identity, or a 1x1 projection + BN where the shape changes."""
        if stride == 1 and x.shape[-1] == out:
            return x
        with v1.variable_scope('shortcut'):
            return self._conv_bn(x, out, 1, stride, 'conv', 'bn')

    def _conv_bn(self, x, filters, kernel_size, stride, conv_name, bn_name, zero_init=False):
        x = layers.conv2d(x, filters, kernel_size, stride, name=conv_name, weight_decay=self.weight_decay,
                          fast=self.fast_conv)
        return layers.batch_norm(x, self._training, name=bn_name, momentum=self.bn_momentum, zero_init=zero_init)

    # -- outputs -------------------------------------------------------------------

    def _build_outputs(self):
        self.probabilities = tf.nn.softmax(self.logits, name='probabilities')
        self.predictions = tf.argmax(self.logits, axis=1, name='predictions')
        self.cross_entropy = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.input_y, logits=self.logits),
            name='cross_entropy')
        reg = v1.get_collection(v1.GraphKeys.REGULARIZATION_LOSSES)
        self.regularization_loss = tf.add_n(reg, name='regularization_loss') if reg else tf.constant(0.0)
        self.loss = tf.add(self.cross_entropy, self.regularization_loss, name='loss')
        correct = tf.equal(self.predictions, self.input_y)
        self.accuracy = tf.reduce_mean(tf.cast(correct, tf.float32), name='accuracy')
        top5 = tf.nn.in_top_k(predictions=self.logits, targets=self.input_y, k=min(5, self.num_classes))
        self.top5_accuracy = tf.reduce_mean(tf.cast(top5, tf.float32), name='top5_accuracy')

    @property
    def trainable_variables(self):
        return v1.trainable_variables()

    def num_params(self):
        """Number of trainable parameters (an int)."""
        return sum(v.shape.num_elements() for v in v1.trainable_variables())
