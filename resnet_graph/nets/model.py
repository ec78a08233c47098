"""``ResNet(depth)``: the residual network of He et al. 2015 as a ``tf.compat.v1`` graph.

One table of stage sizes, one function per block kind. Variables are named
like the paper's table: ``stem/conv``, ``stage1/block0/conv1``,
``stage1/block0/shortcut/conv``, ``head/dense`` (under ``scope/`` when a scope
is given). The tensors a caller needs have stable graph names: ``input_x``,
``input_y``, ``is_training``, ``logits``, ``probabilities``, ``predictions``.
The keras.applications options work in graph mode too (docs/api.md).
"""
import importlib

import tensorflow as tf

import config

from resnet_graph.nets import layers
from resnet_graph.nets import run_network
from resnet_graph.nets import variants
from resnet_graph.nets.checks import check_data_format, check_depth, compute_dtype, conv_policy
from resnet_graph.nets.outputs import classifier_outputs

v1 = tf.compat.v1
# The checks and the outputs live in checks.py and outputs.py; importing them from here still works.
__all__ = ['ResNet', 'POOLINGS', 'check_data_format', 'check_depth', 'classifier_outputs', 'compute_dtype',
           'conv_policy']

POOLINGS = (None, 'avg', 'max')


class ResNet(object):
    """Builds a ResNet in the current default graph; docs/api.md describes every argument and attribute.

    Args (the main ones):
      depth: 18, 34 (basic blocks) or 50, 101, 152 (bottlenecks); 6n+2 for CIFAR-style.
      num_classes (``classes``), height, width, channels (``input_shape``): the logits' width, the input shape;
        num_classes None: a checkpoint family's own (slim_v1, keras 1000; slim_v2, official 1001), else 10.
      input_tensor, label_tensor: float32 [N, H, W, C] and int64 [N] tensors instead of the placeholders.
      training: None (an ``is_training`` placeholder, default False), a Python bool or a scalar bool tensor.
      include_top, pooling: the classifier, or the features (pooling None [N, h, w, C], 'avg' or 'max' [N, C]).
      weights, weights_exclude: a run directory or checkpoint the initializers read; regexes left fresh.
      conv: 'shape_aware' (``fastconv.ConvPolicy.from_config()``), 'plain' (Conv2D) or a ConvPolicy.
      dtype: what the convolutions and the dense layer compute in; variables and logits stay float32.
      architecture ... output_stride: the variants (``variants.py``; ``self.spec`` holds them resolved).

    Attributes: input_x, endpoints, features; with include_top input_y, is_training, logits [N, num_classes],
    probabilities, predictions [N] int64, cross_entropy, regularization_loss, loss, accuracy, top5_accuracy;
    variables, trainable_variables, decayed_kernels, update_ops (this build's BN updates), weights_report.
    """

    def __init__(self, depth=50, num_classes=None, height=32, width=32, channels=1, input_tensor=None,
                 label_tensor=None, training=None, include_top=True, pooling=None, weights=None,
                 weights_exclude=(), scope='', reuse=None, weight_decay=config.TRAIN['weight_decay'], bn_momentum=None,
                 zero_init_residual=True, conv='shape_aware', classes=None, input_shape=None, architecture='auto',
                 shortcut='auto', resnet_version=1, stride_in='3x3', width_multiplier=1.0, no_residual=False,
                 data_format='NHWC', variant='standard', cross_replica_sum=None, fold_bn=False,
                 dtype='float32', output_stride=None):
        self.spec = variants.resolve(depth, architecture, shortcut, resnet_version, stride_in, width_multiplier,
                                     no_residual, data_format, variant, output_stride=output_stride)
        if classes is not None and not include_top:
            raise ValueError('classes=%r needs include_top=True (there is no classifier without the top)'
                             % (classes,))
        num_classes = classes if classes is not None else num_classes
        if num_classes is None:
            num_classes = variants.default_classes(self.spec.variant)
        if pooling not in POOLINGS:
            raise ValueError('pooling=%r is not one of None, "avg", "max"' % (pooling,))
        if input_shape is not None and len(input_shape) != 3:
            raise ValueError('input_shape=%r must be (height, width, channels)' % (input_shape,))
        height, width, channels = input_shape if input_shape is not None else (height, width, channels)
        self.depth = depth
        self.num_classes = num_classes
        self.include_top = include_top
        self.block_kind, self.num_blocks = self.spec.block_kind, self.spec.num_blocks
        self.data_format = data_format
        self.weight_decay = weight_decay
        self.bn_momentum = bn_momentum if bn_momentum is not None else (
            config.CHECKPOINT_BN_MOMENTUM if self.spec.variant in variants.OFFICIAL else config.TRAIN['bn_momentum'])
        self.zero_init_residual = zero_init_residual
        self.conv_policy = conv_policy(conv)
        self.dtype = compute_dtype(dtype)
        self.cross_replica_sum = cross_replica_sum
        self.variables = []
        self._created = False
        self.input_x = self._input(input_tensor, [None, height, width, channels])
        self.is_training, self._training = self._training_switch(training)
        self._fold_bn = fold_bn and self._training is False
        updates_before = len(v1.get_collection_ref(v1.GraphKeys.UPDATE_OPS))
        with v1.variable_scope(scope or v1.get_variable_scope(), reuse=reuse, custom_getter=self._track):
            self.scope = v1.get_variable_scope().name
            self.endpoints = {}
            features = self.backbone(self.input_x)
            if include_top:
                self.logits = tf.identity(layers.cast_to(self.head(features), tf.float32), name='logits')
            elif pooling:
                features = (tf.reduce_mean if pooling == 'avg' else tf.reduce_max)(
                    features, axis=self._spatial_axes, name='%s_pool' % pooling)
        self.features = features
        self.update_ops = v1.get_collection(v1.GraphKeys.UPDATE_OPS)[updates_before:]
        self.trainable_variables = [v for v in self.variables if v.trainable]
        self.decayed_kernels = [v for v in self.variables if v.op.name.endswith(('/kernel', '/weights'))]  # Slim's
        self.regularization_loss = self._weight_decay_loss()
        if include_top:
            self.input_y = self._labels(label_tensor)
            self._build_outputs()
        self.weights_report = self._init_from(weights, weights_exclude) if weights else None

    @classmethod
    def from_config(cls, cfg, **kwargs):
        """The network ``cfg`` (a config.RunConfig) describes; kwargs as for __init__ (``run_network.from_config``)."""
        return run_network.from_config(cls, cfg, **kwargs)

    @classmethod
    def from_run(cls, model_dir, input_tensor=None, **kwargs):
        """A run directory's network with its preprocessing inside (``run_network.from_run``)."""
        return run_network.from_run(cls, model_dir, input_tensor, **kwargs)

    # Inputs and variables, then the network, then its outputs.
    @staticmethod
    def _training_switch(training):
        """``training`` -> (the ``is_training`` tensor, the batch-norm switch: a Python bool or a tensor)."""
        if training is None:
            is_training = v1.placeholder_with_default(False, [], name='is_training')
            return is_training, is_training
        if isinstance(training, tf.Tensor):
            return training, training
        return tf.constant(training, name='is_training'), training

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
        """weight_decay * sum(||kernel||^2) / 2 over this network's conv and dense kernels: a scalar.

        Its value (in ``loss``, logged and summarised); training adds its
        gradient to the kernels' gradients (``optim.train_op``).
        """
        kernels = self.decayed_kernels
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
        from resnet_graph.nets.weights import init_from
        head = {self.local_name(v) for v in self.variables[-2:]} if self.include_top else ()
        return init_from({self.local_name(v): v for v in self.variables}, weights, exclude, self.num_classes, head)

    @property
    def _spatial_axes(self):
        return [2, 3] if self.data_format == 'NCHW' else [1, 2]

    def _family(self):
        """The module building this variant's own graph under its own names (legacy, slim, official), or None."""
        variant = self.spec.variant
        name = ('legacy' if variant == 'legacy' else 'slim' if variant in variants.SLIM_VARIANTS
                else 'official' if variant in variants.OFFICIAL else None)
        return importlib.import_module('resnet_graph.nets.' + name) if name else None

    def backbone(self, x):
        """Stem and the residual stages: [N, H, W, C] -> the last feature map.

        ImageNet-style [N, H/32, W/32, 512 or 2048], CIFAR-style [N, H/4, W/4, 64]
        (times width_multiplier where it applies); [N, C, h, w] with data_format='NCHW'.
        """
        x = layers.cast_to(x, self.dtype)  # every layer after it computes in its input's dtype
        if self.data_format == 'NCHW':
            x = tf.transpose(x, [0, 3, 1, 2], name='to_nchw')
        family = self._family()
        if family:
            return family.backbone(self, x)
        with v1.variable_scope('stem'):
            x = self.stem(x)
        self.endpoints['stem'] = x
        x = self.stack_block(x)
        if self.spec.resnet_version == 2:  # the last block's sum is not normalised yet
            with v1.variable_scope('post_norm'):
                x = tf.nn.relu(self._bn(x, 'bn'))
        return x

    def stem(self, x):
        """ImageNet-style: 7x7/2 conv (+ BN-ReLU in v1) + 3x3/2 max-pool; CIFAR-style: 3x3 conv (+ BN-ReLU in v1)."""
        spec = self.spec
        post_activation = spec.resnet_version == 1
        if spec.architecture == 'cifar':
            if post_activation:
                return self._conv_bn(x, spec.stem_width, 3, 1, relu=True)
            return self._conv(x, spec.stem_width, 3, 1, 'conv')
        if spec.variant == 'keras':  # ZeroPadding2D(3) + VALID 7x7/2; ZeroPadding2D(1) + VALID 3x3/2 max-pool
            x = self._conv_bn(self._zero_pad(x, 3), 64, 7, 2, padding='VALID', relu=True)
            return layers.max_pool(self._zero_pad(x, 1), padding='VALID', data_format=self.data_format)
        if post_activation:
            x = self._conv_bn(x, spec.stem_width, 7, 2, relu=True)
        else:
            x = self._conv(x, spec.stem_width, 7, 2, 'conv')
        return layers.max_pool(x, data_format=self.data_format)

    def stack_block(self, x):
        """The residual stages: [N, H, W, C_stem] -> [N, H/8, W/8, C_out] (ImageNet-style; CIFAR-style H/4)."""
        block = self.bottleneck_block if self.block_kind == 'bottleneck' else self.basic_block
        spec = self.spec
        for stage, (blocks, inner, out) in enumerate(zip(spec.num_blocks, spec.inner_widths, spec.out_widths)):
            with v1.variable_scope('stage%d' % (stage + 1)):
                for index in range(blocks):
                    with v1.variable_scope('block%d' % index):
                        x = block(x, inner, out, 2 if stage > 0 and index == 0 else 1)
                self.endpoints['stage%d' % (stage + 1)] = x = tf.identity(x, name='output')
        return x

    def head(self, x):
        """Global average pooling + dense: [N, h, w, C] -> logits [N, num_classes]."""
        family = self._family()
        if family:
            return family.head(self, x)
        with v1.variable_scope('head'):
            x = layers.global_avg_pool(x, data_format=self.data_format)
            return layers.dense(x, self.num_classes)

    def basic_block(self, x, inner, out, stride):
        """Two 3x3 convolutions (``inner`` = ``out`` channels), the first carrying the stride."""
        return self._block(x, [(inner, 3, stride), (out, 3, 1)], out, stride)

    def bottleneck_block(self, x, inner, out, stride):
        """1x1 reduce to ``inner``, 3x3, 1x1 expand to ``out``; the stride in the 3x3 (v1.5) or the first 1x1 (v1)."""
        first, middle = (stride, 1) if self.spec.stride_in == '1x1' else (1, stride)
        return self._block(x, [(inner, 1, first), (inner, 3, middle), (out, 1, 1)], out, stride)

    def _block(self, x, convs, out, stride):
        """One residual block: [N, H, W, C] -> [N, H/stride, W/stride, out].

        convs: (filters, kernel size, stride) of conv1, conv2, ...
        v1: conv-BN-ReLU each, the last without ReLU, + shortcut, ReLU.
        v2: BN-ReLU-conv each (bn<i> before conv<i>), + shortcut, no ReLU.
        The sum is the op ``residual`` (absent with no_residual).
        """
        if self.spec.resnet_version == 2:
            preact = tf.nn.relu(self._bn(x, 'bn1'))
            shortcut = self._shortcut(x, preact, out, stride)
            y = preact
            for i, (filters, size, step) in enumerate(convs, 1):
                if i < len(convs):  # bn<i+1> normalises conv<i>
                    y = self._conv_bn(y, filters, size, step, 'conv%d' % i, 'bn%d' % (i + 1), relu=True)
                else:
                    y = self._conv(y, filters, size, step, 'conv%d' % i)
            return y if shortcut is None else tf.add(y, shortcut, name='residual')
        shortcut = self._shortcut(x, x, out, stride)
        y = x
        for i, (filters, size, step) in enumerate(convs, 1):
            last = i == len(convs)
            y = self._conv_bn(y, filters, size, step, 'conv%d' % i, 'bn%d' % i,
                              zero_init=last and self.zero_init_residual, relu=not last)
        if shortcut is not None:
            y = tf.add(y, shortcut, name='residual')
        return tf.nn.relu(y)

    def _shortcut(self, x, source, out, stride):
        """The block's shortcut, or None with no_residual.

        The identity ``x`` where the shape stays; else option A (``x``
        subsampled + zero channels, no parameters) or B (1x1 projection of
        ``source`` + BN; v2 projects the pre-activation, without BN).
        """
        spec = self.spec
        if spec.no_residual:
            return None
        channels = x.shape[1 if self.data_format == 'NCHW' else -1]
        if stride == 1 and channels == out:
            return x
        if spec.shortcut == 'A':
            return self._zero_pad_shortcut(x, out, stride)
        with v1.variable_scope('shortcut'):
            if spec.resnet_version == 2:
                return self._conv(source, out, 1, stride, 'conv')
            return self._conv_bn(source, out, 1, stride)

    def _zero_pad_shortcut(self, x, out, stride):
        """Option A: [N, H, W, C] -> [N, H/stride, W/stride, out], the new channels zero."""
        nchw = self.data_format == 'NCHW'
        with tf.name_scope('shortcut'):
            if stride > 1:  # the positions a strided 1x1 convolution would read
                x = x[:, :, ::stride, ::stride] if nchw else x[:, ::stride, ::stride, :]
            extra = out - x.shape[1 if nchw else -1]
            return tf.pad(x, [[0, 0], [0, extra], [0, 0], [0, 0]] if nchw else [[0, 0], [0, 0], [0, 0], [0, extra]])

    def _zero_pad(self, x, pad):
        """``pad`` zeros on each side of both spatial axes (Keras's ZeroPadding2D)."""
        spatial = [[pad, pad], [pad, pad]]
        return tf.pad(x, [[0, 0], [0, 0]] + spatial if self.data_format == 'NCHW' else [[0, 0]] + spatial + [[0, 0]])

    def _conv(self, x, filters, kernel_size, stride, name, padding='fixed'):
        return layers.conv2d(x, filters, kernel_size, stride, name=name, use_bias=self.spec.conv_bias,
                             policy=self.conv_policy, padding=padding, data_format=self.data_format,
                             inference=self._training is False)

    def _conv_bn(self, x, filters, kernel_size, stride, conv_name='conv', bn_name='bn', zero_init=False,
                 padding='fixed', relu=False):
        """Convolution ``conv_name``, batch norm ``bn_name`` (and a ReLU); one folded convolution with ``fold_bn``."""
        if self._fold_bn:
            return layers.conv2d_bn_folded(x, filters, kernel_size, stride, conv_name, bn_name,
                                           epsilon=self.spec.bn_epsilon, zero_init=zero_init,
                                           use_bias=self.spec.conv_bias, policy=self.conv_policy, padding=padding,
                                           data_format=self.data_format, relu=relu)
        y = self._bn(self._conv(x, filters, kernel_size, stride, conv_name, padding=padding), bn_name, zero_init)
        return tf.nn.relu(y) if relu else y

    def _bn(self, x, name, zero_init=False):
        return layers.batch_norm(x, self._training, name=name, momentum=self.bn_momentum,
                                 epsilon=self.spec.bn_epsilon, zero_init=zero_init, data_format=self.data_format,
                                 cross_replica_sum=self.cross_replica_sum)

    def _build_outputs(self):
        for name, tensor in classifier_outputs(self.logits, self.input_y, self.regularization_loss,
                                               self.num_classes).items():
            setattr(self, name, tensor)

    def num_params(self):
        """Number of trainable parameters of this network (an int)."""
        return sum(v.shape.num_elements() for v in self.trainable_variables)

