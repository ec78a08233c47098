"""python -m resnet_graph.import_checkpoint --variant V --depth 50 --checkpoint PREFIX --model_dir RUN: a run.

Turns a TF-Slim resnet_v1/v2 (``--variant slim_v1|slim_v2``) or tensorflow/models
official r1 (``official_v1|official_v2``) checkpoint into a run directory that evaluate,
predict, export and ``--warm_start_from`` take. The weights and batch-norm statistics
are carried over (read by their names, ``ResNet(variant=...)`` builds the family's exact
graph); optimizer slots and the step are not. The family's preprocessing is recorded
(``resnet_graph/serving/imported.py``). A checkpoint of another family or depth: one
line naming the first variable it lacks or holds with another shape, exit 2.
"""
import glob
import os
import re

from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import require, require_directory


def main(args):
    from resnet_graph.nets import variants
    from resnet_graph.serving import imported
    FLAGS = run_flags.FLAGS
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    require_directory('model_dir', FLAGS.model_dir, 'where the run directory is written')
    built = [v for v in variants.VARIANTS if v in imported.FAMILIES and v != 'keras']
    require(FLAGS.variant in built, '--variant %s is not built by this version of resnet_graph (it has %s)'
            % (FLAGS.variant, ', '.join(built)))
    require(FLAGS.checkpoint, '--checkpoint PREFIX is required: the checkpoint path without .index')
    prefix = checkpoint_prefix(FLAGS.checkpoint)
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
    saved = imported.write_run(cfg, weights, what='checkpoint variable', who='import_checkpoint')
    print('imported %s-%d from %s: %s; config %s' % (cfg.imported['family'], FLAGS.depth, prefix, saved,
                                                    os.path.join(FLAGS.model_dir, 'config.json')))
    print(imported.describe(cfg))


def checkpoint_prefix(path):
    """``--checkpoint`` as users give it -> the prefix TensorFlow reads; UsageError where there is none.

    Takes a prefix (model.ckpt-225207), one of its files (.index, .meta, .data-00000-of-00001), a TF-Slim
    model-zoo file (resnet_v1_50.ckpt: the V1 format, one file), a directory holding one checkpoint, or a
    SavedModel directory (official r1's exports: its variables/variables).
    """
    stripped = re.sub(r'\.(index|meta|data-\d+-of-\d+)$', '', path)
    if os.path.isfile(stripped + '.index') or os.path.isfile(stripped):  # V2, or a V1 file
        return stripped
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


def cli_main():
    run_flags.define_import_checkpoint()
    cli.run('resnet_graph.import_checkpoint', main)


if __name__ == '__main__':
    cli_main()
