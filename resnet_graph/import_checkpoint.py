"""python -m resnet_graph.import_checkpoint --variant V --depth 50 --checkpoint PREFIX --model_dir RUN: a run.

Turns a TF-Slim resnet_v1/v2 (``--variant slim_v1|slim_v2``) or tensorflow/models
official r1 (``official_v1|official_v2``) checkpoint into a run directory that evaluate,
predict, export and ``--warm_start_from`` take. The weights and batch-norm statistics
are carried over (read by their names, ``ResNet(variant=...)`` builds the family's exact
graph); optimizer slots and the step are not. The family's preprocessing is recorded
(``resnet_graph/serving/imported.py``). A checkpoint of another family or depth: one
line naming the first variable it lacks or holds with another shape, exit 2.
"""
import os

from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import require


def main(args):
    from resnet_graph.nets import variants
    from resnet_graph.serving import imported
    FLAGS = run_flags.FLAGS
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    built = [v for v in variants.VARIANTS if v in imported.FAMILIES and v != 'keras']
    require(FLAGS.variant in built, '--variant %s is not built by this version of resnet_graph (it has %s)'
            % (FLAGS.variant, ', '.join(built)))
    require(FLAGS.checkpoint, '--checkpoint PREFIX is required: the checkpoint path without .index')
    require(os.path.isfile(FLAGS.checkpoint + '.index'), '--checkpoint %s: no file %s.index (give the prefix, '
            'e.g. model.ckpt-12345 or resnet_v1_50.ckpt)' % (FLAGS.checkpoint, FLAGS.checkpoint))
    require(FLAGS.model_dir, '--model_dir DIR is required: where the run directory is written')
    require(not os.path.exists(os.path.join(FLAGS.model_dir, 'config.json')),
            '--model_dir %s already holds a run; choose a new directory' % FLAGS.model_dir)
    require(FLAGS.image_size >= 32, '--image_size must be at least 32, got %s' % FLAGS.image_size)
    try:
        variants.resolve(FLAGS.depth, 'imagenet', variant=FLAGS.variant)
    except ValueError as e:
        require(False, '--depth %s: %s' % (FLAGS.depth, e))
    num_classes = FLAGS.num_classes or imported.FAMILIES[FLAGS.variant][2]
    require(num_classes >= 1, '--num_classes must be at least 1, got %s' % num_classes)
    names = imported.class_names(num_classes, FLAGS.labels)
    cfg = imported.run_config(FLAGS.variant, FLAGS.depth, num_classes, FLAGS.image_size, FLAGS.model_dir, names,
                              os.path.abspath(FLAGS.checkpoint))
    weights = imported.checkpoint_weights(cfg, FLAGS.checkpoint)
    prefix = imported.write_run(cfg, weights, what='checkpoint variable')
    print('imported %s-%d from %s: %s; config %s' % (cfg['imported']['family'], FLAGS.depth, FLAGS.checkpoint,
                                                    prefix, os.path.join(FLAGS.model_dir, 'config.json')))
    print(imported.describe(cfg))


def cli_main():
    run_flags.define_import_checkpoint()
    cli.run('resnet_graph.import_checkpoint', main)


if __name__ == '__main__':
    cli_main()
