"""``ResNet(depth)``: the residual network of He et al. 2015 as a ``tf.compat.v1`` graph.

One table of stage sizes, one function per block kind. Variables are named
like the paper's table: ``stem/conv``, ``stage1/block0/conv1``,
``stage1/block0/shortcut/conv``, ``head/dense`` (under ``scope/`` when a scope
is given). The tensors a caller needs have stable graph names: ``input_x``,
``input_y``, ``is_training``, ``logits``, ``probabilities``, ``predictions``.

The keras.applications options work in graph mode too: ``input_tensor``,
``input_shape``, ``include_top``, ``pooling``, ``classes``, ``weights``.
"""

import tensorflow as tf

import config

from resnet_graph.nets import layers
from resnet_graph.nets import variants

v1 = tf.compat.v1

# The stage tables (ImageNet- and CIFAR-style), widths and other variants are in ``variants``.
POOLINGS = (None, 'avg', 'max')


def check_depth(depth, architecture='auto'):
    """Raises ValueError naming the valid depths when ``depth`` is not one of them."""
    variants.resolve(depth, architecture)


def compute_dtype(dtype):
    """'float32' | 'bfloat16' | 'float16' (or the tf.DType) -> the tf.DType; ValueError for any other."""
    name = getattr(dtype, 'name', dtype)
    if name not in layers.COMPUTE_DTYPES:
        raise ValueError('dtype=%r is not one of %s' % (dtype, ', '.join(layers.COMPUTE_DTYPES)))
    return tf.as_dtype(name)


def conv_policy(conv):
    """``ResNet``'s conv argument -> the ``fastconv.ConvPolicy`` its convolutions follow (None: plain Conv2D)."""
    if conv == 'plain':
        return None
    if conv == 'shape_aware':
        from resnet_graph.fastconv.policy import ConvPolicy
        return ConvPolicy.from_config()
    if hasattr(conv, 'conv'):
        return conv
    raise ValueError("conv=%r is not 'shape_aware', 'plain' or a fastconv.ConvPolicy" % (conv,))


def check_data_format(data_format):
    """Raises ValueError unless this machine can run ``data_format`` (NCHW convolutions need a GPU)."""
    if data_format == 'NCHW' and not tf.config.list_physical_devices('GPU'):
        raise ValueError('data_format=NCHW needs a GPU and this machine has none (TensorFlow runs NCHW '
                         'convolutions on GPUs only); use NHWC')


class ResNet(object):
    """Builds a ResNet in the current default graph.

    Args:
      depth: 18, 34 (basic blocks) or 50, 101, 152 (bottlenecks); 6n+2 for CIFAR-style.
      num_classes: width of the logits (``classes`` is the keras.applications spelling of it).
      height, width, channels: the input image shape (``input_shape=(H, W, C)`` likewise;
        H and W may be None for a placeholder of any size).
      input_tensor: optional float32 tensor [N, H, W, C] to build on instead of
        the ``input_x`` placeholder (a pipeline's output, a caller's tensor).
      label_tensor: optional int64 tensor [N] to use instead of ``input_y``.
      training: None for an ``is_training`` placeholder (default False), a
        Python bool to fix the batch-norm mode when the graph is built, or a
        scalar bool tensor (one switch shared by several towers).
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
      bn_momentum: decay of the batch-norm moving averages per step (None: config's; the
        official variants' 0.997).
      zero_init_residual: start the last BN gamma of every block at 0.
      conv: 'shape_aware' (the train flag ``--conv``'s default: the exact
        CPU-tuned forms of ``fastconv.ConvPolicy.from_config()``), 'plain'
        (TensorFlow's Conv2D), or a ``fastconv.ConvPolicy``.
      cross_replica_sum: synchronised batch norm across towers (see
        ``layers.batch_norm``; ``towers.Towers`` passes it with ``--sync_bn``).
      fold_bn: with training=False, compute each convolution and the batch
        norm after it as one convolution (``layers.conv2d_bn_folded``: the
        same variables, the same outputs within rounding); no effect on a
        graph that can train. The inference commands pass ``config.FOLD_BN``.
      dtype: 'float32', 'bfloat16' or 'float16' (``layers.COMPUTE_DTYPES``):
        the dtype the convolutions and the dense layer compute in (mixed
        precision). The variables stay float32 (the same names and checkpoints
        for every dtype); batch-norm statistics and the logits and everything
        after them (softmax, loss, metrics) are float32; endpoints and
        ``features`` are in ``dtype``.
      architecture, shortcut, resnet_version, stride_in, width_multiplier,
      no_residual, data_format, variant, output_stride: the variants (``resnet_graph/variants.py``
        says what each does; ``self.spec`` holds them resolved).

    Attributes (tensors): input_x [N,H,W,C], endpoints (dict 'stem', 'stage1'..
    'stage4' -> feature maps), features, and with include_top: input_y [N]
    int64, is_training, logits [N, num_classes], probabilities, predictions
    [N] int64 (argmax over classes), cross_entropy, regularization_loss, loss
    (cross_entropy + regularization_loss), accuracy, top5_accuracy.
    Lists: variables, trainable_variables, decayed_kernels (the conv and dense
    kernels that weight_decay covers), update_ops (this build's BN
    updates), and weights_report (restored / fresh variable names) when
    ``weights`` is given. The TF1 collections hold the same: UPDATE_OPS,
    REGULARIZATION_LOSSES (added once, by the build that creates the variables).
    """

    def __init__(self, depth=50, num_classes=10, height=32, width=32, channels=1, input_tensor=None,
                 label_tensor=None, training=None, include_top=True, pooling=None, weights=None,
                 weights_exclude=(), scope='', reuse=None, weight_decay=0.0, bn_momentum=None,
                 zero_init_residual=True, conv='shape_aware', classes=None, input_shape=None, architecture='auto',
                 shortcut='auto', resnet_version=1, stride_in='3x3', width_multiplier=1.0, no_residual=False,
                 data_format='NHWC', variant='standard', cross_replica_sum=None, fold_bn=False,
                 dtype='float32', output_stride=None):
        self.spec = variants.resolve(depth, architecture, shortcut, resnet_version, stride_in, width_multiplier,
                                     no_residual, data_format, variant, output_stride=output_stride)
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
        self.block_kind, self.num_blocks = self.spec.block_kind, self.spec.num_blocks
        self.data_format = data_format
        self.weight_decay = weight_decay
        self.bn_momentum = bn_momentum if bn_momentum is not None else (
            0.997 if self.spec.variant in variants.OFFICIAL else config.TRAIN['bn_momentum'])
        self.zero_init_residual = zero_init_residual
        self.conv_policy = conv_policy(conv)
        self.dtype = compute_dtype(dtype)
        self.cross_replica_sum = cross_replica_sum
        self.variables = []
        self._created = False
        self.input_x = self._input(input_tensor, [None, height, width, channels])
        if training is None:
            self.is_training = v1.placeholder_with_default(False, [], name='is_training')
            training = self.is_training
        elif isinstance(training, tf.Tensor):
            self.is_training = training
        else:
            self.is_training = tf.constant(training, name='is_training')
        self._training = training
        self._fold_bn = fold_bn and training is False
        self.update_ops = []
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
        """Builds the network a run's configuration (``config.json``) describes; kwargs as for __init__."""
        size = cfg['image_size']
        kwargs = dict(variants.from_config(cfg), **kwargs)
        kwargs.setdefault('conv', cfg.get('conv', config.TRAIN['conv']))
        kwargs.setdefault('dtype', cfg.get('dtype', config.TRAIN['dtype']))  # runs saved before --dtype: float32
        return cls(cfg['depth'], cfg['num_classes'], size, size, cfg['channels'], weight_decay=cfg['weight_decay'],
                   bn_momentum=cfg['bn_momentum'], **kwargs)

    @classmethod
    def from_run(cls, model_dir, input_tensor=None, **kwargs):
        """A run directory's network with its preprocessing inside, restored from its best checkpoint.

        input_tensor: float32 [N, h, w, C] raw images, values 0..255 (None: a placeholder ``raw_images``
        of any size), resized to the run's image_size and normalised with its mean and std in the graph,
        exactly as predict does. The variables take the run's best checkpoint (else its latest) when the
        session runs the initializer. kwargs as for __init__ (training defaults to False).
        Returns the ResNet; ``raw_images`` is its raw input, ``input_x`` the normalised one.
        """
        from resnet_graph.data.pipeline import preprocess
        from resnet_graph.training.run_dir import RunDir
        cfg = RunDir(model_dir).require_config()
        if input_tensor is None:
            input_tensor = v1.placeholder(tf.float32, [None, None, None, cfg['channels']], name='raw_images')
        raw = tf.convert_to_tensor(input_tensor, tf.float32)
        with tf.name_scope('preprocess'):
            normalised = preprocess(raw / 255.0, cfg['image_size'], cfg['mean'], cfg['std'])
        kwargs.setdefault('training', False)
        net = cls.from_config(cfg, input_tensor=normalised, weights=model_dir, **kwargs)
        net.raw_images = raw
        return net

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
        return init_from({self.local_name(v): v for v in self.variables}, weights, exclude, self.num_classes)

    # -- network -----------------------------------------------------------------

    @property
    def _spatial_axes(self):
        return [2, 3] if self.data_format == 'NCHW' else [1, 2]

    def backbone(self, x):
        """Stem and the residual stages: [N, H, W, C] -> the last feature map.

        ImageNet-style [N, H/32, W/32, 512 or 2048], CIFAR-style [N, H/4, W/4, 64]
        (times width_multiplier where it applies); [N, C, h, w] with data_format='NCHW'.
        """
        x = layers.cast_to(x, self.dtype)  # every layer after it computes in its input's dtype
        if self.data_format == 'NCHW':
            x = tf.transpose(x, [0, 3, 1, 2], name='to_nchw')
        if self.spec.variant == 'legacy':
            from resnet_graph.nets import legacy
            return legacy.backbone(self, x)
        if self.spec.variant in variants.SLIM_VARIANTS:
            from resnet_graph.nets import slim
            return slim.backbone(self, x)
        if self.spec.variant in variants.OFFICIAL:
            from resnet_graph.nets import official
            return official.backbone(self, x)
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
        if self.spec.variant == 'legacy':
            from resnet_graph.nets import legacy
            return legacy.head(self, x)
        if self.spec.variant in variants.SLIM_VARIANTS:
            from resnet_graph.nets import slim
            return slim.head(self, x)
        if self.spec.variant in variants.OFFICIAL:
            from resnet_graph.nets import official
            return official.head(self, x)
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

    # -- outputs -------------------------------------------------------------------

    def _build_outputs(self):
        for name, tensor in classifier_outputs(self.logits, self.input_y, self.regularization_loss,
                                               self.num_classes).items():
            setattr(self, name, tensor)

    def num_params(self):
        """Number of trainable parameters of this network (an int)."""
        return sum(v.shape.num_elements() for v in self.trainable_variables)


def classifier_outputs(logits, labels, regularization_loss, num_classes):
    """The named outputs of a classifier from its logits [N, K] and int64 labels [N].

    Returns a dict of tensors: probabilities [N, K], predictions [N] (argmax), cross_entropy,
    loss (cross_entropy + regularization_loss), accuracy and top5_accuracy (scalars).
    """
    predictions = tf.argmax(logits, axis=1, name='predictions')
    cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits),
                                   name='cross_entropy')
    top5 = tf.nn.in_top_k(predictions=logits, targets=labels, k=min(5, num_classes))
    return dict(probabilities=tf.nn.softmax(logits, name='probabilities'), predictions=predictions,
                cross_entropy=cross_entropy, loss=tf.add(cross_entropy, regularization_loss, name='loss'),
                accuracy=tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32), name='accuracy'),
                top5_accuracy=tf.reduce_mean(tf.cast(top5, tf.float32), name='top5_accuracy'))
