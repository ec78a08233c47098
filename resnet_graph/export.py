"""python -m resnet_graph.export --model_dir DIR --format saved_model|frozen_graph --out PATH: a model for serving.

Images go in as they come and are resized and normalised inside the graph
exactly as in training (the run's image size, mean and std).

saved_model: a TF1 SavedModel (tag ``serve``) with two signatures, each
returning ``classes`` (int64 [N]) and ``probabilities`` (float32 [N, K]):
``serving_default`` takes ``image_bytes`` (string [N], encoded PNG, JPEG, GIF,
BMP or WebP, decoded to the run's channel count; an image whose header says
more than --max_image_pixels pixels is refused before decoding), ``predict_images`` takes
``images`` (float32 [N, h, w, C], values in [0, 1]).

frozen_graph: one GraphDef .pb, the variables folded into constants, with
the float path only: feed node ``images``, fetch ``probabilities`` and ``classes``.
"""
import json
import os
import shutil
import tempfile

from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import UsageError, require, require_directory, require_named
from resnet_graph.training.run_dir import RunDir, atomic_write_bytes

FLAGS = run_flags.FLAGS


def build(cfg, with_bytes=True, fold_bn=False, max_pixels=None):
    """Builds the serving graph of a run's configuration into the default graph.

    Returns dict signature name -> (inputs, outputs), dicts of tensors:
    'predict_images': images float32 [N, h, w, C] -> classes int64 [N], probabilities float32 [N, K];
    with_bytes adds 'serving_default': image_bytes string [N] -> the same outputs (a second
    tower on the same variables). fold_bn: fold batch norm into the convolutions (``ResNet``'s option).
    max_pixels: the serving graph refuses an image whose header says more pixels, before decoding it.
    """
    import tensorflow as tf
    from resnet_graph.data.pipeline import decode, preprocess
    from resnet_graph.nets.model import ResNet
    size, channels, mean, std = cfg.image_size, cfg.channels, cfg.mean, cfg.std

    def classify(normalised, reuse):
        # NHWC whatever the run trained with: the same variables, and servers without a GPU can run it.
        net = ResNet.from_config(cfg, training=False, input_tensor=normalised, reuse=reuse, data_format='NHWC',
                                 fold_bn=fold_bn)
        return dict(classes=tf.identity(net.predictions, name='classes'), probabilities=net.probabilities)

    images = tf.compat.v1.placeholder(tf.float32, [None, None, None, channels], name='images')
    signatures = {'predict_images': ({'images': images}, classify(preprocess(images, size, mean, std), None))}
    if with_bytes:
        with tf.name_scope('from_bytes'):
            image_bytes = tf.compat.v1.placeholder(tf.string, [None], name='image_bytes')
            # Each image has its own size until it is resized, so one at a time.
            normalised = tf.map_fn(lambda data: preprocess(decode(data, channels, max_pixels)[None], size, mean, std)[0],
                                   image_bytes, fn_output_signature=tf.TensorSpec([size, size, channels]))
            signatures['serving_default'] = ({'image_bytes': image_bytes}, classify(normalised, True))
    return signatures


def write_saved_model(session, signatures, out):
    """Writes the session's graph and variables as a SavedModel directory ``out`` (renamed into place whole)."""
    import tensorflow as tf
    v1 = tf.compat.v1
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.tmp-export-', dir=parent)
    try:
        builder = v1.saved_model.Builder(os.path.join(tmp, 'model'))
        builder.add_meta_graph_and_variables(session, [v1.saved_model.tag_constants.SERVING], signature_def_map={
            name: v1.saved_model.predict_signature_def(inputs, outputs)
            for name, (inputs, outputs) in signatures.items()}, strip_default_attrs=True)
        builder.save()
        os.rename(os.path.join(tmp, 'model'), out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_frozen_graph(session, signatures, out):
    """Writes the session's graph pruned to the outputs, variables folded into constants, as a GraphDef .pb."""
    import tensorflow as tf
    outputs = [t.op.name for t in signatures['predict_images'][1].values()]
    graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(session, session.graph_def, outputs)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_write_bytes(out, graph_def.SerializeToString())


def export(model_dir, checkpoint, fmt, out, max_pixels=None):
    """Exports a run's checkpoint ('best', 'latest' or a path) as ``fmt`` to ``out``.

    Returns dict: checkpoint (path), signatures {name: {inputs, outputs: {key: [node name, dtype, shape]}}}.
    """
    import tensorflow as tf
    from resnet_graph.serving.inference import find_checkpoint, fold_bn_default, restore_found
    run = RunDir(model_dir, writable=False)
    cfg = run.require_config()
    find_checkpoint(run, checkpoint)  # before the graph: no checkpoint fails fast
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        signatures = build(cfg, with_bytes=fmt == 'saved_model', fold_bn=fold_bn_default(frozen=fmt == 'frozen_graph'),
                           max_pixels=max_pixels)
        path = restore_found(session, run, checkpoint)
        (write_saved_model if fmt == 'saved_model' else write_frozen_graph)(session, signatures, out)
    return dict(checkpoint=path, signatures={name: dict(inputs=describe(i), outputs=describe(o))
                                             for name, (i, o) in sorted(signatures.items())})


def describe(tensors):
    """{key: tensor} -> {key: [node name, dtype name, shape list]}."""
    return {key: [t.op.name, t.dtype.name, t.shape.as_list()] for key, t in tensors.items()}


def main(args):
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    require_directory('model_dir', FLAGS.model_dir, 'the run directory written by resnet_graph.train')
    require(FLAGS.format, '--format is required: saved_model or frozen_graph')
    require_named('out', FLAGS.out, 'where to write the %s' % FLAGS.format, 'file')
    run_path = os.path.join(os.path.realpath(FLAGS.model_dir), '')
    require(not os.path.join(os.path.realpath(FLAGS.out), '').startswith(run_path), '--out %s is inside the run '
            'directory %s, which export only reads; write it elsewhere' % (FLAGS.out, FLAGS.model_dir))
    if FLAGS.format == 'saved_model':
        require(not os.path.exists(FLAGS.out), '--out %s already exists; a SavedModel needs a new directory '
                '(remove it or choose another --out)' % FLAGS.out)
    else:
        require(not os.path.isdir(FLAGS.out), '--out %s is a directory; give the .pb file to write' % FLAGS.out)
    RunDir(FLAGS.model_dir).require_config()  # before TensorFlow loads: a wrong path fails fast
    try:
        result = export(FLAGS.model_dir, FLAGS.checkpoint, FLAGS.format, FLAGS.out, FLAGS.max_image_pixels)
    except OSError as e:
        raise UsageError('cannot write --out %s: %s' % (FLAGS.out, e.strerror or e))
    if FLAGS.json:
        print(json.dumps(dict(result, format=FLAGS.format, out=FLAGS.out), sort_keys=True))
        return
    print('wrote %s %s from %s' % (FLAGS.format, FLAGS.out, result['checkpoint']))
    frozen = FLAGS.format == 'frozen_graph'  # a frozen graph is fed and fetched by node name, a signature by key
    for name, signature in result['signatures'].items():
        inputs, outputs = (', '.join('%s (%s %s)' % (node if frozen else key, dtype, shape)
                                     for key, (node, dtype, shape) in signature[side].items())
                           for side in ('inputs', 'outputs'))
        print('%s: input %s -> outputs %s' % ('nodes' if frozen else 'signature ' + name, inputs, outputs))


def cli_main():
    run_flags.define_export()
    cli.run('resnet_graph.export', main)


if __name__ == '__main__':
    cli_main()
