"""python -m resnet_graph.import_checkpoint --variant V --depth 50 --checkpoint PREFIX --model_dir RUN: a run.

Turns a TF-Slim resnet_v1/v2 (``--variant slim_v1|slim_v2``) or tensorflow/models
official r1 (``official_v1|official_v2``) checkpoint into a run directory that evaluate,
predict, export and ``--warm_start_from`` take. The weights and batch-norm statistics
are carried over (read by their names, ``ResNet(variant=...)`` builds the family's exact
graph); optimizer slots and the step are not: the command counts and names what it left
out. ``--moving_averages`` takes the ExponentialMovingAverage shadows of the weights
(slim's evaluation checkpoints hold them) instead of the raw values. The family's
preprocessing is recorded (``resnet_graph/serving/imported.py``). A checkpoint of
another family or depth: one line naming the first variable it lacks or holds with
another shape, exit 2; a path that is no checkpoint (a Keras file, a run directory, a
SavedModel's parent directory): one line saying what it is and which command takes it.
"""
import glob
import os
import re

from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import require, require_directory, require_named

AVERAGE = '/ExponentialMovingAverage'  # the shadow of variable V is V/ExponentialMovingAverage
# The slot names tf.compat.v1's optimizers give (V/Momentum, V/Adam_1, ...).
SLOT = re.compile(r'/(Momentum|Adam|RMSProp|Adagrad|AdagradDA|Adadelta|Ftrl|LARS|ProximalAdagrad)(_\d+)?$')


def main(args):
    from resnet_graph.nets import variants
    from resnet_graph.serving import imported
    FLAGS = run_flags.FLAGS
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    require_directory('model_dir', FLAGS.model_dir, 'where the run directory is written')
    built = [v for v in variants.VARIANTS if v in imported.FAMILIES and v != 'keras']
    require(FLAGS.variant in built, '--variant %s is not built by this version of resnet_graph (it has %s)'
            % (FLAGS.variant, ', '.join(built)))
    require_named('checkpoint', FLAGS.checkpoint, 'the checkpoint path without .index (PREFIX)', 'checkpoint')
    prefix = checkpoint_prefix(FLAGS.checkpoint, FLAGS.depth)
    imported.require_new_run(FLAGS.model_dir)
    require(FLAGS.image_size >= 32, '--image_size must be at least 32, got %s' % FLAGS.image_size)
    try:
        variants.resolve(FLAGS.depth, 'imagenet', variant=FLAGS.variant)
    except ValueError as e:
        require(False, '--depth %s: %s' % (FLAGS.depth, e))
    num_classes = variants.default_classes(FLAGS.variant) if FLAGS.num_classes is None else FLAGS.num_classes
    require(num_classes >= 1, '--num_classes must be at least 1, got %s' % num_classes)
    names = imported.class_names(num_classes, FLAGS.labels)
    cfg = imported.run_config(FLAGS.variant, FLAGS.depth, num_classes, FLAGS.image_size, FLAGS.model_dir, names,
                              os.path.abspath(prefix))
    imported.check_image_size(cfg)
    weights = imported.checkpoint_weights(cfg, prefix)
    weights, shadows = take_averages(prefix, weights) if FLAGS.moving_averages else (weights, [])
    saved = imported.write_run(cfg, weights, what='checkpoint variable', who='import_checkpoint')
    print('imported %s-%d from %s: %s; config %s' % (cfg.imported['family'], FLAGS.depth, prefix, saved,
                                                    os.path.join(FLAGS.model_dir, 'config.json')))
    print(imported.describe(cfg))
    if shadows:
        print('imported the moving averages (%s) of %d of the %d variables instead of their raw values'
              % (AVERAGE[1:], len(shadows), len(weights)))
    left_out = left_out_line(prefix, (set(weights) - set(shadows)) | {name + AVERAGE for name in shadows}, shadows)
    if left_out:
        print(left_out)


def take_averages(prefix, weights):
    """The weights with each variable's moving-average shadow in place of its raw value, where the checkpoint holds one.

    Returns (weights, the names whose shadow was taken); UsageError when it holds no shadow or one of another shape.
    """
    import tensorflow as tf
    saved = dict(tf.compat.v1.train.list_variables(prefix))
    shadows = [name for name in weights if name + AVERAGE in saved]
    require(shadows, '--moving_averages: checkpoint %s holds no %s shadows (it was trained without them); import '
            'it without the flag' % (prefix, AVERAGE[1:]))
    reader = tf.train.load_checkpoint(prefix)
    weights = dict(weights)
    for name in shadows:
        require(list(saved[name + AVERAGE]) == list(weights[name].shape), 'checkpoint %s holds %s with shape %s, '
                'its variable %s' % (prefix, name + AVERAGE, list(saved[name + AVERAGE]), list(weights[name].shape)))
        weights[name] = reader.get_tensor(name + AVERAGE)
    return weights, shadows


def left_out_line(prefix, read, replaced=()):
    """One line counting and naming the variables of checkpoint ``prefix`` outside ``read`` (None: there are none):
    raw values ``replaced`` by their moving averages, optimizer slots, moving-average shadows, the step, the rest
    (an auxiliary head, another network's layers)."""
    import tensorflow as tf
    unused = sorted(set(name for name, _ in tf.compat.v1.train.list_variables(prefix)) - set(read))
    if not unused:
        return None
    replaced = set(replaced)
    raw = [n for n in unused if n in replaced]
    slots = [n for n in unused if SLOT.search(n) and not n.endswith(AVERAGE) and n not in replaced]
    shadows = [n for n in unused if n.endswith(AVERAGE)]
    steps = [n for n in unused if n == 'global_step']
    grouped = set(raw + slots + shadows + steps)
    others = [n for n in unused if n not in grouped]
    parts = ['%s replaced by their moving averages' % _count(raw, 'raw value')] if raw else []
    if slots:
        parts.append('%s (e.g. %s)' % (_count(slots, 'optimizer slot'), slots[0]))
    if shadows:
        parts.append('%s (--moving_averages imports them instead of the raw weights)'
                     % _count(shadows, 'moving-average shadow'))
    parts += steps
    if others:
        parts.append('%s (%s%s)' % (_count(others, 'other'), ', '.join(others[:3]), ', ...' if others[3:] else ''))
    return 'left out %s the network does not use: %s' % (_count(unused, 'checkpoint variable'), ', '.join(parts))


def _count(names, word):
    """'1 word' or 'N words'."""
    return '%d %s%s' % (len(names), word, '' if len(names) == 1 else 's')


def checkpoint_prefix(path, depth):
    """``--checkpoint`` as users give it -> the prefix TensorFlow reads; UsageError where there is none.

    Takes a prefix (model.ckpt-225207), one of its files (.index, .meta, .data-00000-of-00001), a TF-Slim
    model-zoo file (resnet_v1_50.ckpt: the V1 format, one file), a directory holding one checkpoint, or a
    SavedModel directory (official r1's exports: its variables/variables). ``depth``: named in the advice for a
    Keras file.
    """
    named = _state_file_names(path)
    if named:
        return checkpoint_prefix(named, depth)
    stripped = _strip(path)
    other = what_else(path, depth)
    require(not other, other)
    if os.path.isfile(stripped + '.index') or os.path.isfile(stripped):  # V2, or a V1 file
        return stripped
    data = sorted(glob.glob(glob.escape(stripped) + '.data-*'))
    require(not data, '--checkpoint %s: %s is there but not its index %s.index; copy both files'
            % (path, data[0] if data else '', stripped))
    require(os.path.isdir(path), '--checkpoint %s: no file %s.index (give the prefix, e.g. model.ckpt-12345 or '
            'resnet_v1_50.ckpt)' % (path, stripped))
    saved_model = os.path.join(path, 'variables', 'variables')
    if os.path.isfile(saved_model + '.index'):
        return saved_model
    found = sorted(name[:-len('.index')] for name in glob.glob(os.path.join(glob.escape(path), '*.index')))
    found = found or sorted(glob.glob(os.path.join(glob.escape(path), '*.ckpt')))  # a model-zoo tarball's V1 file
    require(len(found) == 1, '--checkpoint %s is a directory with %s; give one checkpoint prefix%s'
            % (path, '%d checkpoints' % len(found) if found else 'no checkpoint (no *.index or *.ckpt file)',
               ', e.g. %s' % found[-1] if found else ''))
    return found[0]


def _strip(path):
    """A checkpoint file's path less its suffix (.index, .meta, .data-*): the prefix it belongs to."""
    return re.sub(r'\.(index|meta|data-\d+-of-\d+)$', '', path)


def _is_table(path):
    """Whether file ``path`` ends in TensorFlow's table magic number, as every .index and V1 checkpoint file does."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < len(TABLE_MAGIC):
                return False
            f.seek(-len(TABLE_MAGIC), os.SEEK_END)
            return f.read() == TABLE_MAGIC
    except OSError:
        return True  # the checkpoint reader says why


def _state_file_names(path):
    """The checkpoint that TensorFlow's state file ``path`` (DIR/checkpoint) names; None for any other path."""
    if os.path.basename(path) != 'checkpoint' or not os.path.isfile(path) or _is_table(path):
        return None
    import tensorflow as tf
    try:
        state = tf.train.get_checkpoint_state(os.path.dirname(path) or '.', latest_filename='checkpoint')
    except ValueError:  # a state file naming no checkpoint
        return None
    named = state and state.model_checkpoint_path
    return named if named and named != path else None


TABLE_MAGIC = (0xdb4775248b80fb57).to_bytes(8, 'little')  # table_format.h's kTableMagicNumber, little-endian
ARCHIVES = ((b'\x89HDF\r\n\x1a\n', 'a Keras HDF5 file (.h5)'), (b'PK\x03\x04', 'a zip archive'),
            (b'\x1f\x8b', 'a gzip archive'))


def what_else(path, depth):
    """One line saying what ``path`` is and which command takes it, when it is no TensorFlow checkpoint; else None."""
    if os.path.isfile(path):
        try:
            with open(path, 'rb') as f:
                head = f.read(8)
        except OSError:
            return None  # the checkpoint reader says why
        kind = next((what for magic, what in ARCHIVES if head.startswith(magic)), None)
        if kind == 'a zip archive' and path.endswith('.keras'):
            kind = 'a Keras archive (.keras)'
        if kind and 'Keras' in kind:
            model = 'resnet%d' % depth if depth in (50, 101, 152) else 'resnet50|resnet101|resnet152'
            return ('--checkpoint %s is %s, not a TensorFlow checkpoint: import it with python -m '
                    'resnet_graph.import_keras --model %s --weights %s' % (path, kind, model, path))
        if kind:
            return ('--checkpoint %s is %s, not a TensorFlow checkpoint: extract it (a model-zoo .tar.gz: tar xzf) '
                    'and give the checkpoint inside' % (path, kind))
        if path == _strip(path) and not os.path.isfile(path + '.index') and not _is_table(path):
            return ('--checkpoint %s is not a TensorFlow checkpoint (no *.index file beside it, and not a V1 '
                    'checkpoint file); give the checkpoint prefix, e.g. model.ckpt-12345' % path)
        return None
    if not os.path.isdir(path):
        return None
    return _what_directory(path)


def _what_directory(path):
    """what_else of a directory: a run directory (or its best/), a SavedModel without variables, SavedModels' parent."""
    from resnet_graph.serving.imported import run_directory_line
    run = run_directory_line('--checkpoint', path)
    if run:
        return run
    if os.path.isfile(os.path.join(path, 'saved_model.pb')) and not os.path.isfile(
            os.path.join(path, 'variables', 'variables.index')):
        return ('--checkpoint %s is a SavedModel without variables (variables/variables.index): its weights are '
                'not a checkpoint; give the checkpoint it was exported from' % path)
    try:
        models = sorted(d for d in os.listdir(path) if os.path.isfile(os.path.join(path, d, 'saved_model.pb')))
    except OSError:
        return None
    if models and not glob.glob(os.path.join(glob.escape(path), '*.index')):
        return ('--checkpoint %s holds SavedModels in subdirectories (%s): give one, e.g. --checkpoint %s'
                % (path, ', '.join(models[:3]) + (', ...' if models[3:] else ''), os.path.join(path, models[-1])))
    return None


def cli_main():
    run_flags.define_import_checkpoint()
    cli.run('resnet_graph.import_checkpoint', main)


if __name__ == '__main__':
    cli_main()
