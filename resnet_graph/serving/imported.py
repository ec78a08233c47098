"""Run directories made from other trainers' weights (import_checkpoint, import_keras).

An imported run is an ordinary run directory (config.json + best/model.ckpt-0) that
evaluate, predict, export and ``--warm_start_from`` take. Its config records what it is:
``variant``, ``num_classes``, ``class_names`` (from a labels file, else the class
indices), ``preprocessing`` (the family's, as ``mean`` / ``std`` on [0, 1] values, which
predict and the exported graph apply), ``dataset: null`` (it was not trained here) and
``imported`` (where from).

Families (``FAMILIES``): the preprocessing their checkpoints were trained with, on RGB:
  vgg        0..255 values minus the ImageNet channel means (slim v1, official r1)
  inception  x / 127.5 - 1, values in [-1, 1] (slim v2)
  caffe      keras.applications: VGG means on BGR (import_keras flips the first kernel)
"""
import os

from resnet_graph.errors import UsageError, require

VGG_MEAN_RGB = (123.68, 116.78, 103.94)
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
# preprocessing name -> (mean, std) in 0..255 units: the network sees (255 x - mean) / std.
PREPROCESSING = {'vgg': (VGG_MEAN_RGB, (1.0,) * 3), 'inception': ((127.5,) * 3, (127.5,) * 3),
                 'caffe': (CAFFE_MEAN_RGB, (1.0,) * 3)}
# variant -> (what it is, preprocessing, classes of its published checkpoints)
FAMILIES = {
    'slim_v1': ('TF-Slim resnet_v1', 'vgg', 1000),
    'slim_v2': ('TF-Slim resnet_v2', 'inception', 1001),
    'official_v1': ('tensorflow/models official r1 ResNet v1.5', 'vgg', 1001),
    'official_v2': ('tensorflow/models official r1 ResNet v2', 'vgg', 1001),
    'keras': ('keras.applications ResNet', 'caffe', 1000),
}
BACKGROUND = 'background'


def class_names(num_classes, labels=None):
    """The run's class names: [num_classes] strings.

    labels: None (plain indices), or a file of one name a line. A 1001-class network has class 0 =
    background (slim v2, official r1): its names are 'background' and then the file's 1000 names
    (or the ImageNet indices 0..999), so class k is ImageNet class k - 1.
    """
    background = num_classes == 1001
    if labels is None:
        return [BACKGROUND] + [str(i) for i in range(1000)] if background else [str(i) for i in range(num_classes)]
    try:
        with open(labels) as f:
            names = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError('--labels %s cannot be read (%s)' % (labels, getattr(e, 'strerror', None) or e))
    if background and len(names) == 1000:
        names = [BACKGROUND] + names
    require(len(names) == num_classes, '--labels %s has %d names, the network %d classes%s' % (
        labels, len(names), num_classes, ' (1000 names are taken as classes 1..1000 after background)'
        if background else ''))
    return names


def run_config(variant, depth, num_classes, image_size, model_dir, names, source):
    """The config.json of an imported run (``source``: what the weights came from, a string)."""
    import config
    from resnet_graph.nets import variants
    spec = variants.resolve(depth, 'imagenet', variant=variant)
    what, preprocessing = FAMILIES[variant][0], FAMILIES[variant][1]
    mean, std = PREPROCESSING[preprocessing]
    cfg = dict(config.TRAIN, depth=depth, num_classes=num_classes, image_size=image_size, channels=3,
               model_dir=model_dir, variant=variant, architecture='imagenet', stride_in=spec.stride_in,
               shortcut=spec.shortcut, resnet_version=spec.resnet_version, mean=[m / 255.0 for m in mean],
               std=[s / 255.0 for s in std], dataset=None, data_dir='', class_names=names,
               preprocessing=preprocessing, imported=dict(family=what, source=source))
    if variant != 'keras':  # slim's and official r1's batch-norm decay, for fine-tuning the run
        cfg['bn_momentum'] = 0.997
    return cfg


def check_fits(prefix, variables, local_name, hint=''):
    """Raises UsageError naming the first variable of the network that ``prefix`` lacks or holds mis-shaped.

    variables: the network's, in creation order (the last two are the classifier's).
    """
    import tensorflow as tf
    try:
        saved = dict(tf.compat.v1.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as e:
        raise UsageError('%s is not a readable TensorFlow checkpoint prefix (%s)' % (prefix, str(e).split('\n')[0]))
    head = {local_name(v) for v in variables[-2:]}
    for variable in variables:
        name, shape = local_name(variable), variable.shape.as_list()
        if name not in saved:
            raise UsageError('checkpoint %s has no variable %s: it is not this family and depth%s'
                             % (prefix, name, hint))
        if list(saved[name]) != shape:
            raise UsageError('checkpoint %s holds %s with shape %s, the network has %s%s'
                             % (prefix, name, list(saved[name]), shape,
                                ' (pass --num_classes %d)' % saved[name][-1] if name in head else hint))


def checkpoint_weights(cfg, prefix):
    """name -> numpy array of the run's network's variables, read from checkpoint ``prefix`` (checked first)."""
    import tensorflow as tf
    from resnet_graph.nets.model import ResNet
    with tf.Graph().as_default():
        model = ResNet.from_config(cfg, training=False)
        from resnet_graph.training.run_dir import checkpoint_problem
        problem = checkpoint_problem(prefix)
        require(not problem, '--checkpoint %s cannot be read: %s; give a whole checkpoint' % (prefix, problem))
        check_fits(prefix, model.variables, model.local_name, ' (another --variant or --depth?)')
        names = [model.local_name(v) for v in model.variables]
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in names}


def write_run(cfg, weights, what='weight'):
    """Builds the run's graph, loads ``weights`` (name -> array) and saves config.json + best/model.ckpt-0.

    Returns the checkpoint prefix. Writes nothing when a weight is missing or mis-shaped (UsageError).
    """
    import tensorflow as tf
    from resnet_graph.nets.model import ResNet
    from resnet_graph.training.run_dir import RunDir
    v1 = tf.compat.v1
    run = RunDir(cfg['model_dir'])
    with tf.Graph().as_default():
        model = ResNet.from_config(cfg, training=False)
        names = {model.local_name(v): v for v in model.variables}
        for name, variable in names.items():
            require(name in weights, 'no %s %s for the network' % (what, name))
            require(list(weights[name].shape) == variable.shape.as_list(), '%s %s has shape %s, the network %s'
                    % (what, name, list(weights[name].shape), variable.shape.as_list()))
        with v1.Session() as sess:
            # One run of the initialisers with their initial values fed: every variable takes its weight.
            sess.run([v.initializer for v in names.values()],
                     {v.initializer.inputs[1]: weights[name] for name, v in names.items()})
            run.create()
            prefix = v1.train.Saver(model.variables).save(sess, os.path.join(run.best_dir, 'model.ckpt'),
                                                         global_step=0, write_meta_graph=False)
    run.save_config(cfg)
    return prefix


def describe(cfg):
    """One line for the import commands' output: classes, background offset, image size, preprocessing."""
    offset = (' (class 0 is background: class k is ImageNet class k-1)'
              if cfg['class_names'] and cfg['class_names'][0] == BACKGROUND else '')
    return ('%d classes%s; image_size %d recorded (evaluate, predict and export resize to it; --image_size to '
            'change); %s preprocessing' % (cfg['num_classes'], offset, cfg['image_size'], cfg['preprocessing']))


def check_dataset(cfg, model_dir, loader_classes=None):
    """Raises UsageError when an imported run has no data set or one of another class count."""
    if cfg.get('dataset') is None:
        raise UsageError('%s was imported (%s, %d classes) and records no data set to evaluate on; predict and '
                         'export take it, or train on your data with --warm_start_from %s'
                         % (model_dir, cfg.get('imported', {}).get('family', 'weights'), cfg['num_classes'],
                            model_dir))
    if loader_classes is not None and loader_classes != cfg['num_classes']:
        raise UsageError('%s is a %d-class network; its data set %s has %d classes: evaluate needs a data set '
                         'of the network\'s classes' % (model_dir, cfg['num_classes'], cfg['dataset'],
                                                         loader_classes))
