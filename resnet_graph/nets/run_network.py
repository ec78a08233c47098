"""The network a run describes: ``ResNet.from_config`` (a config.RunConfig), ``ResNet.from_run`` (a run directory)."""
import os

import tensorflow as tf

from resnet_graph.nets import variants

v1 = tf.compat.v1
# ResNet arguments a run's config.json fixes: ResNet.from_run refuses them.
RUN_FIXED = ('depth', 'num_classes', 'classes', 'height', 'width', 'channels', 'weight_decay', 'bn_momentum', 'weights')


def from_config(cls, cfg, **kwargs):
    """Builds ``cls`` (``ResNet``) as ``cfg`` (a config.RunConfig, e.g. a run's config.json) describes it.

    kwargs: as for ``ResNet.__init__``; they win over the configuration's conv and dtype.
    Returns the network.
    """
    kwargs = dict(variants.from_config(cfg), **kwargs)
    kwargs.setdefault('conv', cfg.conv)
    kwargs.setdefault('dtype', cfg.dtype)
    return cls(cfg.depth, cfg.num_classes, cfg.image_size, cfg.image_size, cfg.channels,
               weight_decay=cfg.weight_decay, bn_momentum=cfg.bn_momentum, **kwargs)


def from_run(cls, model_dir, input_tensor=None, **kwargs):
    """A run directory's network with its preprocessing inside, restored from its best checkpoint.

    input_tensor: raw images [N, h, w, C], values 0..255: uint8 (decoded images as they are) or float
    (None: a float32 placeholder ``raw_images`` of any size), resized to the run's image_size and
    normalised with its mean and std in the graph, exactly as predict does. The variables take the
    run's best checkpoint (else its latest) when the session runs the initializer. kwargs as for
    __init__ (training defaults to False).
    Returns the ``cls`` (ResNet); ``raw_images`` is its raw input as float32, ``input_x`` the normalised one.
    Raises UsageError for a model_dir that is no run, or an input of another dtype, rank or channel count.
    """
    from resnet_graph.data.pipeline import preprocess
    from resnet_graph.errors import require
    from resnet_graph.training.run_dir import CONFIG, RunDir
    fixed = [key for key in RUN_FIXED if key in kwargs]
    require(not fixed, 'ResNet.from_run builds the network of %s: drop %s (ResNet(...) builds another network; '
            'weights= restores a run into it)' % (os.path.join(model_dir, CONFIG), ', '.join(fixed)))
    run = RunDir(model_dir, writable=False)
    cfg = run.require_config()
    require(run.best_checkpoint() or run.latest_checkpoint(), '%s holds no checkpoint (a config.json alone: its '
            'training has not saved one yet); train it, or give a run that has one' % model_dir)
    if input_tensor is None:
        input_tensor = v1.placeholder(tf.float32, [None, None, None, cfg.channels], name='raw_images')
    raw = raw_images(input_tensor, cfg.channels, model_dir)
    with tf.name_scope('preprocess'):
        normalised = preprocess(raw / 255.0, cfg.image_size, cfg.mean, cfg.std)
    kwargs.setdefault('training', False)
    net = from_config(cls, cfg, input_tensor=normalised, weights=model_dir, **kwargs)
    net.raw_images = raw
    return net


def raw_images(images, channels, model_dir):
    """``images`` (a tensor or array of raw images, uint8 or float, 0..255) as float32; UsageError naming what a run
    of ``channels`` channels expects when they are of another dtype, rank or channel count."""
    from resnet_graph.errors import require
    tensor = tf.convert_to_tensor(images)  # an array keeps its dtype: uint8 stays uint8
    expected = ('input_tensor of %s must be raw images [N, h, w, %d], uint8 or float with values 0..255; '
                % (model_dir, channels))
    require(tensor.dtype == tf.uint8 or tensor.dtype.is_floating, expected + 'got %s' % tensor.dtype.name)
    shape = tensor.shape
    require(shape.rank is None or (shape.rank == 4 and shape[-1] in (None, channels)),
            expected + 'got shape %s' % (shape.as_list() if shape.rank is not None else None))
    if shape.rank is None:  # a placeholder of any shape: the resize needs the rank, the run checks the rest
        tensor = tf.ensure_shape(tensor, [None, None, None, channels])
    return tf.cast(tensor, tf.float32)
