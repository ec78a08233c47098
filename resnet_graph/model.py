"""``ResNet(depth)``: the residual network of He et al. 2015 as a ``tf.compat.v1`` graph.

One table of stage sizes, one function per block kind. Variables are named
like the paper's table: ``stem/conv``, ``stage1/block0/conv1``,
``stage1/block0/shortcut/conv``, ``head/dense`` (under ``scope/`` when a scope
is given). The tensors a caller needs have stable graph names: ``input_x``,
``input_y``, ``is_training``, ``logits``, ``probabilities``, ``predictions``.

The keras.applications options work in graph mode too: ``input_tensor``,
``input_shape``, ``include_top``, ``pooling``, ``classes``, ``weights``.
"""
import re

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
POOLINGS = (None, 'avg', 'max')


def check_depth(depth):
    """Raises ValueError naming the valid depths when ``depth`` is not one of them."""
    if depth not in STAGES:
        raise ValueError('depth %r is not supported; valid depths: %s'
                         % (depth, ', '.join(str(d) for d in sorted(STAGES))))


class ResNet(object):
    """Builds a ResNet in the current default graph.

    Args:
      depth: 18, 34 (basic blocks) or 50, 101, 152 (bottlenecks).
      num_classes: width of the logits (``classes`` is the keras.applications spelling of it).
      height, width, channels: the input image shape (``input_shape=(H, W, C)`` likewise;
        H and W may be None for a placeholder of any size).
      input_tensor: optional float32 tensor [N, H, W, C] to build on instead of
        the ``input_x`` placeholder (a pipeline's output, a caller's tensor).
      label_tensor: optional int64 tensor [N] to use instead of ``input_y``.
      training: None for an ``is_training`` placeholder (default False), or a
        Python bool to fix the batch-norm mode when the graph is built.
      include_top: build the classifier (global average pooling + dense), the
        loss and the metrics; False stops at the features.
      pooling: with include_top=False, None (``features`` is the last feature
        map [N, h, w, C_out]), 'avg' or 'max' (``features`` is [N, C_out]).
      weights: None, or a resnet_graph run directory or checkpoint: the
        variables are then initialised from it when the caller's session runs
        the initializer (``tf.compat.v1.train.init_from_checkpoint``).
      weights_exclude: regular expressions of variable names (without the
        scope) that ``weights`` must not initialise, e.g. ``('head/',)`` for a
        new head; they keep their fresh initialisers.
      scope: variable scope of the network ('' = top level, as the trainer's checkpoints).
      reuse: True or tf.compat.v1.AUTO_REUSE to share the variables of an earlier
        build in the same scope (a second tower).
      weight_decay: L2 factor on conv and dense kernels (not BN, not biases).
      bn_momentum: decay of the batch-norm moving averages per step.
      zero_init_residual: start the last BN gamma of every block at 0.
      fast_conv: use the exact shape-aware convolutions of ``layers.conv2d``.

    Attributes (tensors): input_x [N,H,W,C], endpoints (dict 'stem', 'stage1'..
    'stage4' -> feature maps), features, and with include_top: input_y [N]
    int64, is_training, logits [N, num_classes], probabilities, predictions
    [N] int64 (argmax over classes), cross_entropy, regularization_loss, loss
    (cross_entropy + regularization_loss), accuracy, top5_accuracy.
    Lists: variables, trainable_variables, update_ops (this build's BN
    updates), and weights_report (restored / fresh variable names) when
    ``weights`` is given. The TF1 collections hold the same: UPDATE_OPS,
    REGULARIZATION_LOSSES (added once, by the build that creates the variables).
    """

    def __init__(self, depth=50, num_classes=10, height=32, width=32, channels=1, input_tensor=None,
                 label_tensor=None, training=None, include_top=True, pooling=None, weights=None,
                 weights_exclude=(), scope='', reuse=None, weight_decay=0.0, bn_momentum=0.9,
                 zero_init_residual=True, fast_conv=True, classes=None, input_shape=None):
        check_depth(depth)
        if classes is not None:
            if not include_top:
                raise ValueError('classes=%r needs include_top=True (there is no classifier without the top)'
                                 % (classes,))
            num_classes = classes
        if pooling not in POOLINGS:
            raise ValueError('pooling=%r is not one of None, "avg", "max"' % (pooling,))
        if input_shape is not None:
            if len(input_shape) != 3:
                raise ValueError('input_shape=%r must be (height, width, channels)' % (input_shape,))
            height, width, channels = input_shape
        self.depth = depth
        self.num_classes = num_classes
        self.include_top = include_top
        self.block_kind, self.num_blocks = STAGES[depth]
        self.weight_decay = weight_decay
        self.bn_momentum = bn_momentum
        self.zero_init_residual = zero_init_residual
        self.fast_conv = fast_conv
        self.variables = []
        self._created = False
        self.input_x = self._input(input_tensor, [None, height, width, channels])
        if training is None:
            self.is_training = v1.placeholder_with_default(False, [], name='is_training')
            training = self.is_training
        else:
            self.is_training = tf.constant(training, name='is_training')
        self._training = training
        self.update_ops = []
        updates_before = len(v1.get_collection_ref(v1.GraphKeys.UPDATE_OPS))
        with v1.variable_scope(scope or v1.get_variable_scope(), reuse=reuse, custom_getter=self._track):
            self.scope = v1.get_variable_scope().name
            self.endpoints = {}
            features = self.backbone(self.input_x)
            if include_top:
                self.logits = tf.identity(self.head(features), name='logits')
            elif pooling:
                features = (tf.reduce_mean if pooling == 'avg' else tf.reduce_max)(
                    features, axis=[1, 2], name='%s_pool' % pooling)
        self.features = features
        self.update_ops = v1.get_collection(v1.GraphKeys.UPDATE_OPS)[updates_before:]
        self.trainable_variables = [v for v in self.variables if v.trainable]
        self.regularization_loss = self._weight_decay_loss()
        if include_top:
            self.input_y = self._labels(label_tensor)
            self._build_outputs()
        self.weights_report = self._init_from(weights, weights_exclude) if weights else None

    @classmethod
    def from_config(cls, cfg, **kwargs):
        """Builds the network a run's configuration (``config.json``) describes; kwargs as for __init__."""
        size = cfg['image_size']
        return cls(cfg['depth'], cfg['num_classes'], size, size, cfg['channels'], weight_decay=cfg['weight_decay'],
                   bn_momentum=cfg['bn_momentum'], **kwargs)

    # -- inputs and variables ------------------------------------------------------

    @staticmethod
    def _input(tensor, shape):
        if tensor is None:
            return v1.placeholder(tf.float32, shape, name='input_x')
        tensor = tf.convert_to_tensor(tensor)
        if tensor.shape.rank != 4:
            raise ValueError('input_tensor must be 4-D [batch, height, width, channels], got shape %s'
                             % tensor.shape)
        if tensor.shape[-1] is None:
            raise ValueError('input_tensor needs a known channel count, got shape %s' % tensor.shape)
        return tensor

    @staticmethod
    def _labels(tensor):
        if tensor is None:
            return v1.placeholder(tf.int64, [None], name='input_y')
        return tf.cast(tensor, tf.int64)

    def _track(self, getter, *args, **kwargs):
        """Custom getter: records every variable this build uses, created or shared."""
        count = len(v1.get_collection_ref(v1.GraphKeys.GLOBAL_VARIABLES))
        variable = getter(*args, **kwargs)
        self._created |= len(v1.get_collection_ref(v1.GraphKeys.GLOBAL_VARIABLES)) > count
        self.variables.append(variable)
        return variable

    def _weight_decay_loss(self):
        """weight_decay * sum(||kernel||^2) / 2 over this network's conv and dense kernels: a scalar."""
        kernels = [v for v in self.variables if v.op.name.endswith('/kernel')]
        if not self.weight_decay or not kernels:
            return tf.constant(0.0, name='regularization_loss')
        loss = tf.multiply(self.weight_decay, tf.add_n([tf.nn.l2_loss(k) for k in kernels]),
                           name='regularization_loss')
        if self._created:  # once per set of variables, however many towers share them
            v1.add_to_collection(v1.GraphKeys.REGULARIZATION_LOSSES, loss)
        return loss

    def local_name(self, variable):
        """A variable's name without this network's scope and ':0' (its name in the trainer's checkpoints)."""
        name = variable.op.name
        return name[len(self.scope) + 1:] if self.scope else name

    def _init_from(self, weights, exclude):
        """Makes the initializers of this network's variables read ``weights``; returns the report."""
        path = _checkpoint_path(weights)
        saved = dict(v1.train.list_variables(path))
        restored, fresh, mapping = [], [], {}
        for variable in self.variables:
            name = self.local_name(variable)
            if any(re.search(p, name) for p in exclude):
                fresh.append(name)
                continue
            if name not in saved:
                raise ValueError('weights=%s has no variable %s; pass weights_exclude=[...] for layers it '
                                 'does not hold' % (weights, name))
            if list(saved[name]) != variable.shape.as_list():
                raise ValueError('weights=%s holds %s with shape %s, the network has %s (classes=%s?); '
                                 'exclude it with weights_exclude=["head/"] to train a new head'
                                 % (weights, name, saved[name], variable.shape.as_list(), self.num_classes))
            mapping[name] = variable
            restored.append(name)
        v1.train.init_from_checkpoint(path, mapping)
        return dict(checkpoint=path, restored=restored, fresh=fresh)

    # -- network -----------------------------------------------------------------

    def backbone(self, x):
        """Stem and the four stages: [N, H, W, C] -> [N, H/32, W/32, 512 or 2048]."""
        with v1.variable_scope('stem'):
            x = self._conv_bn(x, 64, 7, 2, 'conv', 'bn')
            x = tf.nn.relu(x)
            x = layers.max_pool(x)
        self.endpoints['stem'] = x
        return self.stack_block(x)

    def stack_block(self, x):
        """The four residual stages: [N, H, W, 64] -> [N, H/8, W/8, 512 or 2048]."""
        block = self.bottleneck_block if self.block_kind == 'bottleneck' else self.basic_block
        for stage, (blocks, width) in enumerate(zip(self.num_blocks, STAGE_WIDTHS)):
            with v1.variable_scope('stage%d' % (stage + 1)):
                for index in range(blocks):
                    with v1.variable_scope('block%d' % index):
                        x = block(x, width, 2 if stage > 0 and index == 0 else 1)
                self.endpoints['stage%d' % (stage + 1)] = x = tf.identity(x, name='output')
        return x

    def head(self, x):
        """Global average pooling + dense: [N, h, w, C] -> logits [N, num_classes]."""
        with v1.variable_scope('head'):
            x = layers.global_avg_pool(x)
            return layers.dense(x, self.num_classes)

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
        x = layers.conv2d(x, filters, kernel_size, stride, name=conv_name, fast=self.fast_conv)
        return layers.batch_norm(x, self._training, name=bn_name, momentum=self.bn_momentum, zero_init=zero_init)

    # -- outputs -------------------------------------------------------------------

    def _build_outputs(self):
        self.probabilities = tf.nn.softmax(self.logits, name='probabilities')
        self.predictions = tf.argmax(self.logits, axis=1, name='predictions')
        self.cross_entropy = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.input_y, logits=self.logits),
            name='cross_entropy')
        self.loss = tf.add(self.cross_entropy, self.regularization_loss, name='loss')
        correct = tf.equal(self.predictions, self.input_y)
        self.accuracy = tf.reduce_mean(tf.cast(correct, tf.float32), name='accuracy')
        top5 = tf.nn.in_top_k(predictions=self.logits, targets=self.input_y, k=min(5, self.num_classes))
        self.top5_accuracy = tf.reduce_mean(tf.cast(top5, tf.float32), name='top5_accuracy')

    def num_params(self):
        """Number of trainable parameters of this network (an int)."""
        return sum(v.shape.num_elements() for v in self.trainable_variables)


def _checkpoint_path(weights):
    """A run directory (its best checkpoint, else its latest) or a checkpoint prefix -> the prefix."""
    import os
    if os.path.isdir(weights):
        path = tf.train.latest_checkpoint(os.path.join(weights, 'best')) or tf.train.latest_checkpoint(weights)
        if path is None:
            raise ValueError('weights=%s is a directory without checkpoints' % weights)
        return path
    if not v1.train.checkpoint_exists(weights):
        raise ValueError('weights=%s is neither a run directory nor a checkpoint' % weights)
    return weights
