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
import io
import os

from resnet_graph.errors import UsageError, require, require_named, utf8_text, warn
from resnet_graph.nets.variants import FAMILY_CLASSES

VGG_MEAN_RGB = (123.68, 116.78, 103.94)
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
# preprocessing name -> (mean, std) in 0..255 units: the network sees (255 x - mean) / std.
PREPROCESSING = {'vgg': (VGG_MEAN_RGB, (1.0,) * 3), 'inception': ((127.5,) * 3, (127.5,) * 3),
                 'caffe': (CAFFE_MEAN_RGB, (1.0,) * 3)}
# variant -> (what it is, preprocessing, classes of its published checkpoints: variants.FAMILY_CLASSES)
FAMILIES = {variant: (what, preprocessing, FAMILY_CLASSES[variant]) for variant, what, preprocessing in (
    ('slim_v1', 'TF-Slim resnet_v1', 'vgg'),
    ('slim_v2', 'TF-Slim resnet_v2', 'inception'),
    ('official_v1', 'tensorflow/models official r1 ResNet v1.5', 'vgg'),
    ('official_v2', 'tensorflow/models official r1 ResNet v2', 'vgg'),
    ('keras', 'keras.applications ResNet', 'caffe'))}
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
    require_named('labels', labels, 'a text file of class names, one a line', 'file')
    try:
        with open(labels, 'rb') as f:  # decoded whole, so a bad byte's position counts from the file's start
            data = f.read()
        names = [line.strip() for line in io.StringIO(utf8_text(data, '--labels %s' % labels, 'save it as UTF-8, '
                                                                'one class name a line'), newline=None)]
    except OSError as e:
        raise UsageError('--labels %s cannot be read (%s)' % (labels, e.strerror or e))
    names = _checked_names(labels, names)
    if background and len(names) == 1000:
        names = [BACKGROUND] + names
    require(len(names) == num_classes, '--labels %s has %d names, the network %d classes%s' % (
        labels, len(names), num_classes, ' (1000 names are taken as classes 1..1000 after background)'
        if background else ''))
    return names


def _checked_names(labels, lines):
    """The names of labels file ``labels`` (its stripped ``lines``): trailing blank lines dropped; UsageError for a
    blank line between names (it would shift every later name), a warning for a name given twice."""
    while lines and not lines[-1]:
        lines = lines[:-1]
    if '' in lines:
        raise UsageError('--labels %s: line %d is blank; give one class name a line (a blank line shifts every later '
                         'name to the wrong class)' % (labels, lines.index('') + 1))
    first = {}
    for number, name in enumerate(lines, 1):
        if name in first:
            warn('--labels %s names %s twice (lines %d and %d); predictions of either class will read the same'
                 % (labels, name, first[name], number))
            break
        first[name] = number
    return lines


def run_config(variant, depth, num_classes, image_size, model_dir, names, source):
    """The configuration (a config.RunConfig) of an imported run (``source``: what the weights came from)."""
    import config
    from resnet_graph.nets import variants
    spec = variants.resolve(depth, 'imagenet', variant=variant)
    what, preprocessing = FAMILIES[variant][0], FAMILIES[variant][1]
    mean, std = PREPROCESSING[preprocessing]
    momentum = {} if variant == 'keras' else dict(bn_momentum=config.CHECKPOINT_BN_MOMENTUM)  # for fine-tuning it
    return config.RunConfig.defaults(
        depth=depth, num_classes=num_classes, image_size=image_size, channels=3, model_dir=model_dir,
        variant=variant, architecture='imagenet', stride_in=spec.stride_in, shortcut=spec.shortcut,
        resnet_version=spec.resnet_version, mean=[m / 255.0 for m in mean], std=[s / 255.0 for s in std],
        dataset=None, data_dir='', class_names=names, preprocessing=preprocessing,
        imported=dict(family=what, source=source), **momentum)


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
        guess = family_of([name for name, _ in tf.compat.v1.train.list_variables(prefix)], cfg.variant, cfg.depth,
                          saved_model=prefix.endswith(os.path.join('variables', 'variables')))
        check_fits(prefix, model.variables, model.local_name, ' (%s)' % (guess or 'another --variant or --depth?'))
        names = [model.local_name(v) for v in model.variables]
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in names}


def family_of(names, variant, depth, saved_model=False):
    """What a checkpoint's variable ``names`` say it is, when that is not ``variant`` at ``depth`` (one phrase of
    advice), else None. saved_model: the checkpoint is a SavedModel's variables."""
    import re
    for name in names:
        match = re.match(r'resnet_v([12])_(\d+)/', name)  # TF-Slim's scope names the version and depth
        if match and (variant, depth) != ('slim_v' + match.group(1), int(match.group(2))):
            return "its variables are TF-Slim resnet_v%s_%s's: --variant slim_v%s --depth %s" % (
                match.group(1), match.group(2), match.group(1), match.group(2))
    if any(name.startswith('resnet_model/') for name in names) and not variant.startswith('official'):
        return "its variables are official r1's (resnet_model/): --variant official_v1 or official_v2"
    if any(name.endswith('/.ATTRIBUTES/VARIABLE_VALUE') for name in names):
        return ('it is a TF2 object-based checkpoint (tf.train.Checkpoint or a Keras SavedModel), not a TF1 '
                'name-based one: for a keras.applications model, save it as .keras or .h5 and use import_keras')
    if any(name.startswith(('stem/', 'head/dense/')) for name in names) and saved_model:
        return ('it is a SavedModel exported by resnet_graph: the run it was exported from needs no import, and '
                'train --warm_start_from takes that run')
    if any(name.startswith(('stem/', 'head/dense/')) for name in names):
        return 'it is a resnet_graph checkpoint: train --warm_start_from takes it as it is'
    return None


def check_image_size(cfg, flags=('image_size',)):
    """UsageError when one image of the run's --image_size cannot be classified in this machine's memory (predict
    and export would resize every image to it). flags: the command's flags that would change it (evaluate and
    predict have none: the run fixes the size)."""
    from resnet_graph.training import memory
    memory.check(cfg.replace(batch_size=1), cfg.channels, cfg.num_classes, training=False, flags=flags)


def require_new_run(model_dir):
    """UsageError when ``model_dir`` holds a run (a checkpoint) or another writer holds its lock: an import writes
    only a new run. A config.json alone is a first start that failed or was killed (training/lifecycle.py), which
    the import replaces."""
    from resnet_graph.training import lifecycle
    from resnet_graph.training.run_dir import RunDir
    require(not os.path.exists(model_dir) or os.path.isdir(model_dir), '--model_dir %s exists and is not a '
            'directory; choose a new directory' % model_dir)
    lifecycle.require_free(model_dir)
    require(not RunDir(model_dir).has_checkpoint_files(), '--model_dir %s already holds a run; choose a new '
            'directory' % model_dir)
    _require_replaceable(model_dir)


def _require_replaceable(model_dir):
    """UsageError when the files an import replaces (config.json, best/) are not a failed first start's: the
    user's own config.json or best/ folder stays as it was."""
    import fnmatch
    from resnet_graph.training import lifecycle
    from resnet_graph.training.run_dir import RunDir
    try:
        RunDir(model_dir, writable=False).load_config()
    except UsageError as e:
        raise UsageError('--model_dir %s holds a config.json that is not a resnet_graph run\'s (%s); choose a new '
                         'directory' % (model_dir, e))
    best = os.path.join(model_dir, 'best')
    theirs = sorted(name for name in (os.listdir(best) if os.path.isdir(best) else ())
                    if name != 'checkpoint' and not any(fnmatch.fnmatch(name, p) for p in lifecycle.ORPHAN_PATTERNS))
    require(not theirs, '--model_dir %s has a best/ folder that is not a run\'s (it holds %s); choose a new '
            'directory' % (model_dir, ', '.join(theirs[:3]) + (', ...' if theirs[3:] else '')))


def run_directory_line(flag, path):
    """One line for an import command's ``flag`` given a resnet_graph run directory (or its best/), else None."""
    for run in (path, os.path.dirname(os.path.normpath(path))):
        config = os.path.join(run, 'config.json')
        ours = os.path.isfile(config) and os.path.isdir(os.path.join(run, 'best'))  # another tool's config.json: no
        if ours and (run == path or os.path.basename(os.path.normpath(path)) == 'best'):
            return ('%s %s is a resnet_graph run directory (%s): it needs no import; evaluate, predict and export take '
                    'it as it is, and train --warm_start_from %s starts a new run from its weights'
                    % (flag, path, config, run))
    return None


def write_run(cfg, weights, what='weight', who='import_keras'):
    """Builds the run's graph, loads ``weights`` (name -> array) and saves config.json + best/model.ckpt-0,
    holding the run directory's lock (a second writer, import or train, gets one line).

    Returns the checkpoint prefix. Writes nothing when a weight is missing or mis-shaped (UsageError). The
    checkpoint is written into a temporary folder renamed to best/ last: until then the directory holds no
    checkpoint, so an import killed midway leaves no run, only a provisional config.json that blocks nothing
    (the next writer removes the temporary folder under the lock).
    """
    import tensorflow as tf
    from resnet_graph.nets.model import ResNet
    v1 = tf.compat.v1
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
            saver = v1.train.Saver(model.variables, save_relative_paths=True)
            try:
                return _save_locked(sess, saver, cfg, who)
            except (OSError, tf.errors.OpError) as e:
                from resnet_graph.training.lifecycle import save_failure
                raise UsageError('cannot write the run directory %s: %s' % (cfg.model_dir, save_failure(
                    e, saver, os.path.join(cfg.model_dir, 'best', 'model.ckpt'))))


def _save_locked(sess, saver, cfg, who):
    """Under the run's lock: the checkpoint into a temporary folder, config.json, then the folder renamed to
    best/ (the step that makes it a run). Returns the checkpoint prefix."""
    import shutil
    import tempfile
    from resnet_graph.training import lifecycle
    from resnet_graph.training.run_dir import RunDir
    run = RunDir(cfg.model_dir)
    require_new_run(run.path)
    with lifecycle.hold(run, who=who):
        require(not run.has_checkpoint_files(), '--model_dir %s already holds a run; choose a new directory'
                % run.path)  # again under the lock: another writer may have finished meanwhile
        staging = tempfile.mkdtemp(prefix='.tmp-import-', dir=run.path)
        try:
            saver.save(sess, os.path.join(staging, 'model.ckpt'), global_step=0, write_meta_graph=False)
            run.save_config(cfg)
            shutil.rmtree(run.best_dir, ignore_errors=True)  # no checkpoint in it (checked): a failed start's
            os.rename(staging, run.best_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        run.create()
    return os.path.join(run.best_dir, 'model.ckpt-0')


def describe(cfg):
    """One line for the import commands' output: classes, background offset, image size, preprocessing."""
    offset = (' (class 0 is background: class k is ImageNet class k-1)'
              if cfg.class_names and cfg.class_names[0] == BACKGROUND else '')
    return ('%d classes%s; image_size %d recorded (evaluate, predict and export resize to it; --image_size to '
            'change); %s preprocessing' % (cfg.num_classes, offset, cfg.image_size, cfg.preprocessing))


def warm_start_input(path, variant=None, depth=None):
    """What a fresh run warm-started from ``path`` must feed its network to keep the imported weights' meaning.

    Returns {mean, std, channels, preprocessing, variant, depth}: an imported run directory's (its family's
    preprocessing, 3 channels, its network), or for a checkpoint file of a family ``variant`` (TF-Slim, official
    r1, Keras: not a resnet_graph run) that family's; {} for anything else (a trained run, a checkpoint of the
    standard network, an unreadable config).
    """
    import json
    if not os.path.isdir(path):
        if variant not in FAMILIES:
            return {}
        mean, std = PREPROCESSING[FAMILIES[variant][1]]
        return dict(mean=[m / 255.0 for m in mean], std=[s / 255.0 for s in std], channels=3,
                    preprocessing=FAMILIES[variant][1], variant=variant, depth=depth)
    try:
        with open(os.path.join(path, 'config.json')) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict) or not saved.get('imported') or saved.get('preprocessing') not in PREPROCESSING:
        return {}
    return {key: saved.get(key) for key in ('mean', 'std', 'channels', 'preprocessing', 'variant', 'depth')}


def has_background(cfg):
    """Whether class 0 of a run's network is background (slim v2, official r1: 1001 classes), as the import recorded."""
    names = cfg.class_names or []
    return bool(cfg.imported) and bool(names) and names[0] == BACKGROUND


def check_dataset(cfg, model_dir, loader_classes=None, dataset=None):
    """The label offset an evaluation applies: 0, or 1 where a data set lacks the network's background class.

    Args:
      cfg: the run's config; model_dir: its directory (named in errors); loader_classes: the data set's class
      count (None: no data set); dataset: the data set's name (None: the run's own).
    Returns:
      0 (data class k is the network's class k) or 1 (a K-class network whose class 0 is background, on a data
      set of K - 1 classes: data class k is the network's class k + 1).
    Raises:
      UsageError when there is no data set or its class count fits neither way.
    """
    if loader_classes is None:
        raise UsageError('%s was imported (%s, %d classes) and records no data set to evaluate on; give evaluate '
                         '--dataset NAME --data_dir DIR (a data set of its classes, in its class order%s)'
                         % (model_dir, (cfg.imported or {}).get('family', 'weights'), cfg.num_classes,
                            ', or of %d without the background' % (cfg.num_classes - 1)
                            if has_background(cfg) else ''))
    if loader_classes == cfg.num_classes:
        return 0
    background = has_background(cfg)
    if background and loader_classes == cfg.num_classes - 1:
        return 1
    raise UsageError('%s is a %d-class network%s; %s has %d classes: evaluate needs a data set of the network\'s '
                     'classes%s' % (model_dir, cfg.num_classes, ' (class 0 background)' if background else '',
                                   '--dataset %s' % dataset if dataset else 'its data set %s' % cfg.dataset,
                                   loader_classes, ' (or of %d: class k scored as k + 1)' % (cfg.num_classes - 1)
                                   if background else ''))
