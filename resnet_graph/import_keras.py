"""python -m resnet_graph.import_keras --model resnet50 --weights FILE --model_dir DIR: a Keras ResNet as a run.

Converts the weights of ``keras.applications.ResNet50/101/152`` (a ``.keras``
model, a full-model ``.h5``, a ``.weights.h5`` or the legacy ``.h5`` weights
file that ``weights='imagenet'`` downloads) into a resnet_graph run directory:
``config.json`` (``variant: keras``, which reproduces Keras's layout exactly)
and ``best/model.ckpt-0``, so evaluate, predict and ``--warm_start_from`` take it.

Preprocessing. Keras's ``preprocess_input`` for these models is caffe-style:
RGB -> BGR, then subtract the ImageNet mean (B 103.939, G 116.779, R 123.68)
from 0..255 values, no scaling. resnet_graph feeds RGB in [0, 1] and computes
(x - mean) / std, so the run records mean = (123.68, 116.779, 103.939) / 255
and std = 1/255 for R, G, B, and the import reverses the input-channel axis of
the first convolution's kernel: the network then takes RGB and computes
exactly what Keras computes on the BGR image. ``image_size`` is recorded as
224 (``--image_size``), Keras's ImageNet resolution (the network itself takes
any size), and said in the output; ``num_classes`` is the classifier's width in the
file, ``class_names`` come from ``--labels FILE`` (else the indices); the run
records no data set (``resnet_graph/serving/imported.py``).
"""
import os

from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import UsageError, require, require_directory, require_named

MODELS = {'resnet50': 50, 'resnet101': 101, 'resnet152': 152}
IMAGENET_URL = ('https://storage.googleapis.com/tensorflow/keras-applications/resnet/'
                '%s_weights_tf_dim_ordering_tf_kernels.h5')


def layer_map(depth):
    """Our layer scope -> the keras.applications layer name, for ResNet-``depth`` (50, 101, 152)."""
    from resnet_graph.nets.variants import IMAGENET_STAGES
    mapping = {'stem/conv': 'conv1_conv', 'stem/bn': 'conv1_bn', 'head/dense': 'predictions'}
    for stage, blocks in enumerate(IMAGENET_STAGES[depth][1]):
        for block in range(blocks):
            ours, theirs = 'stage%d/block%d/' % (stage + 1, block), 'conv%d_block%d_' % (stage + 2, block + 1)
            for i in (1, 2, 3):
                mapping[ours + 'conv%d' % i] = theirs + '%d_conv' % i
                mapping[ours + 'bn%d' % i] = theirs + '%d_bn' % i
            if block == 0:
                mapping[ours + 'shortcut/conv'] = theirs + '0_conv'
                mapping[ours + 'shortcut/bn'] = theirs + '0_bn'
    return mapping


# The order of each Keras layer's weights, as our variable names.
KERAS_ORDER = {'conv': ('kernel', 'bias'), 'bn': ('gamma', 'beta', 'moving_mean', 'moving_variance'),
               'dense': ('kernel', 'bias')}


def _classes_in(path):
    """The classifier width of an .h5 file (its only 2-D array is the dense kernel [2048, classes]), or None."""
    import h5py
    shapes = []
    with h5py.File(path, 'r') as f:
        f.visititems(lambda name, item: shapes.append(item.shape) if isinstance(item, h5py.Dataset) else None)
    widths = [s[1] for s in shapes if len(s) == 2]
    return widths[0] if len(widths) == 1 else None


def _is_full_model(path):
    import h5py
    with h5py.File(path, 'r') as f:
        return 'model_config' in f.attrs


def _check_format(path):
    """UsageError unless ``path`` is a zip archive (.keras) or an HDF5 file (.h5, .weights.h5)."""
    import zipfile
    import h5py
    if path.endswith('.keras'):
        require(zipfile.is_zipfile(path), '%s is not a Keras archive: a .keras file is a zip archive (saved by '
                'model.save); give a .keras, .h5 or .weights.h5 file' % path)
    else:
        require(h5py.is_hdf5(path), '%s is not an HDF5 file: a .h5 or .weights.h5 Keras file is one (saved by '
                'model.save_weights); give a .keras, .h5 or .weights.h5 file' % path)


def _weighted_layers(path):
    """The number of layers holding weights in an .h5 weights file (legacy or Keras 3 layout)."""
    import h5py
    groups = set()
    with h5py.File(path, 'r') as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset):  # legacy: <layer>/<layer>/kernel:0; Keras 3: layers/<layer>/vars/0
                groups.add(name.split('/vars/')[0] if '/vars/' in name else name.split('/')[0])
        f.visititems(visit)
    return len(groups)


def _depth_of(path, depth):
    """The keras.applications ResNet depth whose weighted layer count the file has (``depth`` if it fits)."""
    count = _weighted_layers(path)
    for candidate in (depth, 50, 101, 152):
        if count == len(layer_map(candidate)):
            return candidate
    raise UsageError('%s holds %d layers with weights, keras.applications.ResNet%d has %d: it is another model'
                     % (path, count, depth, len(layer_map(depth))))


def load_keras(path, name):
    """The Keras model held by ``path`` (weights loaded); UsageError when the file cannot be one of ours.

    A weights file of another ResNet depth is loaded into that depth's model, so that ``keras_weights``
    names the layers that differ.
    """
    import warnings
    import keras
    _check_format(path)
    try:
        with warnings.catch_warnings():  # Keras warns per layer it cannot match; we say it in one line
            warnings.simplefilter('ignore')
            if path.endswith('.keras') or _is_full_model(path):
                return keras.models.load_model(path, compile=False)
            classes = _classes_in(path)
            require(classes, '%s holds no single classifier layer (an include_top=False file, or not a %s?); '
                    'import needs the weights of the whole keras.applications model' % (path, name))
            depth = _depth_of(path, MODELS[name])
            builder = {50: keras.applications.ResNet50, 101: keras.applications.ResNet101,
                       152: keras.applications.ResNet152}[depth]
            model = builder(weights=None, classes=classes, classifier_activation=None)
            model.load_weights(path)
            return model
    except UsageError:
        raise
    except Exception as e:  # Keras says why in its own words: a broken file
        raise UsageError('%s is not a Keras %s file: %s' % (path, name, ' '.join(str(e).split())[:300]))


def keras_weights(model, name, depth):
    """Our variable name -> numpy array, from a keras.applications ResNet model; UsageError if it is another model."""
    mapping = layer_map(depth)
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(mapping.values()) - set(layers))
    extra = sorted(set(layers) - set(mapping.values()))
    other = [d for d in (50, 101, 152) if set(layer_map(d).values()) == set(layers)]
    require(not missing and not extra, 'the Keras file holds another model than keras.applications.%s: %s%s'
            % (name.replace('resnet', 'ResNet'), '; '.join(
                (['missing layers %s' % ', '.join(missing[:3])] if missing else [])
                + (['unexpected layers %s' % ', '.join(extra[:3])] if extra else [])),
               ' (it is keras.applications.ResNet%d: --model resnet%d)' % (other[0], other[0]) if other else ''))
    weights = {}
    for scope, layer_name in mapping.items():
        kind = 'dense' if scope == 'head/dense' else scope.rsplit('/', 1)[1].rstrip('0123456789')
        values = layers[layer_name].get_weights()
        require(len(values) == len(KERAS_ORDER[kind]), 'Keras layer %s has %d weights, a %s of %s has %d'
                % (layer_name, len(values), kind, name, len(KERAS_ORDER[kind])))
        for variable, value in zip(KERAS_ORDER[kind], values):
            weights['%s/%s' % (scope, variable)] = value
    # Keras's first convolution reads BGR; ours reads RGB (see the module docstring).
    weights['stem/conv/kernel'] = weights['stem/conv/kernel'][:, :, ::-1, :]
    return weights


def require_keras_file(path):
    """UsageError unless ``path`` is a file; for a TensorFlow checkpoint or a run directory, naming the command
    that takes it."""
    import re
    from resnet_graph.serving.imported import run_directory_line
    run = run_directory_line('--weights', path)
    require(not run, run)
    prefix = re.sub(r'\.(index|data-\d+-of-\d+)$', '', path)
    named = prefix != path or not os.path.isfile(path)  # one of a checkpoint's files, or its prefix
    require(not (named and os.path.isfile(prefix + '.index')), '--weights %s is a TensorFlow checkpoint (%s.index), '
            'not a Keras file: import it with python -m resnet_graph.import_checkpoint --variant '
            'slim_v1|slim_v2|official_v1|official_v2 --checkpoint %s' % (path, prefix, prefix))
    require(os.path.isfile(path), '--weights %s is not a file' % path)


def run_config(depth, num_classes, image_size, model_dir, labels=None, source=''):
    """The config.json of an imported run (``labels``: a file of class names, one a line, or None)."""
    from resnet_graph.serving import imported
    return imported.run_config('keras', depth, num_classes, image_size, model_dir,
                               imported.class_names(num_classes, labels), source)


def write_run(cfg, weights):
    """Saves config.json + best/model.ckpt-0 of ``weights`` (name -> array); returns the checkpoint prefix."""
    from resnet_graph.serving import imported
    return imported.write_run(cfg, weights, what='Keras weight', who='import_keras')


def main(args):
    FLAGS = run_flags.FLAGS
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    require_directory('model_dir', FLAGS.model_dir, 'where the run directory is written')
    require_named('weights', FLAGS.weights or None, 'a .keras, .h5 or .weights.h5 file of keras.applications.%s'
                  % FLAGS.model.replace('resnet', 'ResNet'), 'file')
    require(FLAGS.weights != 'imagenet', '--weights imagenet: resnet_graph does not download; get %s (keras.'
            'applications.%s(weights="imagenet") saves it in ~/.keras/models/) and pass its path, e.g. --weights '
            '~/.keras/models/%s' % (IMAGENET_URL % FLAGS.model, FLAGS.model.replace('resnet', 'ResNet'),
                                    os.path.basename(IMAGENET_URL % FLAGS.model)))
    require_keras_file(FLAGS.weights)
    from resnet_graph.serving.imported import require_new_run
    require_new_run(FLAGS.model_dir)
    require(FLAGS.image_size >= 32, '--image_size must be at least 32, got %s' % FLAGS.image_size)
    depth = MODELS[FLAGS.model]
    model = load_keras(FLAGS.weights, FLAGS.model)
    weights = keras_weights(model, FLAGS.model, depth)
    cfg = run_config(depth, int(weights['head/dense/bias'].shape[0]), FLAGS.image_size, FLAGS.model_dir,
                     FLAGS.labels, os.path.abspath(FLAGS.weights))
    from resnet_graph.serving.imported import check_image_size
    check_image_size(cfg)
    prefix = write_run(cfg, weights)
    print('imported keras.applications.%s from %s: %s; config %s'
          % (FLAGS.model.replace('resnet', 'ResNet'), FLAGS.weights, prefix,
             os.path.join(FLAGS.model_dir, 'config.json')))
    from resnet_graph.serving.imported import describe
    print(describe(cfg))


def cli_main():
    run_flags.define_import_keras()
    cli.run('resnet_graph.import_keras', main)


if __name__ == '__main__':
    cli_main()
