"""The network a run describes: ``ResNet.from_config`` (a config.RunConfig), ``ResNet.from_run`` (a run directory)."""
import tensorflow as tf

from resnet_graph.nets import variants

v1 = tf.compat.v1


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

    input_tensor: float32 [N, h, w, C] raw images, values 0..255 (None: a placeholder ``raw_images``
    of any size), resized to the run's image_size and normalised with its mean and std in the graph,
    exactly as predict does. The variables take the run's best checkpoint (else its latest) when the
    session runs the initializer. kwargs as for __init__ (training defaults to False).
    Returns the ``cls`` (ResNet); ``raw_images`` is its raw input, ``input_x`` the normalised one.
    """
    from resnet_graph.data.pipeline import preprocess
    from resnet_graph.training.run_dir import RunDir
    cfg = RunDir(model_dir).require_config()
    if input_tensor is None:
        input_tensor = v1.placeholder(tf.float32, [None, None, None, cfg.channels], name='raw_images')
    raw = tf.convert_to_tensor(input_tensor, tf.float32)
    with tf.name_scope('preprocess'):
        normalised = preprocess(raw / 255.0, cfg.image_size, cfg.mean, cfg.std)
    kwargs.setdefault('training', False)
    net = from_config(cls, cfg, input_tensor=normalised, weights=model_dir, **kwargs)
    net.raw_images = raw
    return net
