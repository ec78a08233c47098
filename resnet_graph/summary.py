"""python -m resnet_graph.summary --depth 50: per-stage output shapes, parameters and multiply-adds of a ResNet.

``--model_dir RUN`` summarises a run's network instead (trained or imported): its config.json
gives the depth, variant, image size, channels and classes (the flags for those are then
refused: one way to say each), and nothing is written in the run.

Everything is read from the built graph (no training, no data): the network
is built on a batch of one image with known shape; parameters are its
trainable variables (batch-norm moving statistics are listed apart);
multiply-adds are those of every convolution (output positions x k*k*C_in*C_out,
from the Conv2D ops' kernel and output shapes) and of the dense layer (D x
classes). Batch norm, ReLU, pooling, biases and the shortcut additions are not
counted, as in the usual figures (torchvision's 4.09 G for ResNet-50).
"""
import json

from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.nets import variants
from resnet_graph.nets.counts import summarize
from resnet_graph.errors import UsageError, require, require_directory

FLAGS = run_flags.FLAGS


def format_table(summary, depth, image_size, channels, num_classes):
    """The summary as text lines."""
    spec = summary['spec']
    lines = ['ResNet-%d (%s, v%d, %s variant, shortcut %s, stride in %s, width x%g%s, %s), input %dx%dx%d, '
             '%d classes' % (depth, spec['architecture'], spec['resnet_version'], spec['variant'], spec['shortcut'],
                             spec['stride_in'], spec['width_multiplier'],
                             ', no residual' if spec['no_residual'] else '', spec['data_format'],
                             image_size, image_size, channels, num_classes),
             '%-10s %-18s %14s %16s' % ('layer', 'output shape', 'parameters', 'multiply-adds')]
    for row in summary['rows']:
        lines.append('%-10s %-18s %14s %16s' % (row['name'], 'x'.join(map(str, row['output_shape'])),
                                                '{:,}'.format(row['params']), '{:,}'.format(row['macs'])))
    lines.append('%-10s %-18s %14s %16s' % ('total', '', '{:,}'.format(summary['params']),
                                            '{:,}'.format(summary['macs'])))
    lines.append('%.2f M trainable parameters (+ %s batch-norm moving statistics), %.2f G multiply-adds per image'
                 % (summary['params'] / 1e6, '{:,}'.format(summary['non_trainable']), summary['macs'] / 1e9))
    return lines


NETWORK_FLAGS = ('depth', 'image_size', 'channels', 'num_classes') + tuple(variants.DEFAULTS)


def network_of_flags():
    """(depth, image_size, channels, num_classes, variant options, title None) the flags describe."""
    for name in ('image_size', 'channels', 'num_classes'):
        require(FLAGS[name].value >= 1, '--%s must be at least 1, got %s' % (name, FLAGS[name].value))
    options = {key: FLAGS[key].value for key in variants.DEFAULTS}
    try:
        variants.resolve(FLAGS.depth, **options)
    except ValueError as e:
        raise UsageError(str(e))
    from resnet_graph.serving.imported import FAMILIES
    num_classes = FLAGS.num_classes
    if not FLAGS['num_classes'].present and options['variant'] in FAMILIES:
        num_classes = FAMILIES[options['variant']][2]  # the family's own classifier (1001: with background)
    return FLAGS.depth, FLAGS.image_size, FLAGS.channels, num_classes, options, None


def network_of_run(model_dir):
    """(depth, image_size, channels, num_classes, variant options, title) of a run directory's network, from its
    config.json alone (read, never written); UsageError for a missing or damaged run or a network flag beside it."""
    import os
    from resnet_graph.training.run_dir import CONFIG, RunDir
    given = [name for name in NETWORK_FLAGS if FLAGS[name].present]
    require(not given, '--model_dir takes the network from %s; drop --%s'
            % (os.path.join(model_dir, CONFIG), ' --'.join(given)))
    cfg = RunDir(model_dir, writable=False).require_config()
    origin = ('imported from %s' % cfg.imported.get('family', 'another trainer') if cfg.imported
              else 'trained on %s' % cfg.dataset)
    return (cfg.depth, cfg.image_size, cfg.channels, cfg.num_classes, variants.from_config(cfg),
            'run %s: %s' % (model_dir, origin))


def main(args):
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    if FLAGS['model_dir'].present:  # optional, but an empty or blank value names no run (as in every command)
        require_directory('model_dir', FLAGS.model_dir, 'the run directory written by resnet_graph.train or an '
                          'import command')
    depth, image_size, channels, num_classes, options, title = (
        network_of_run(FLAGS.model_dir) if FLAGS.model_dir else network_of_flags())
    summary = summarize(depth, image_size, channels, num_classes, **options)
    if FLAGS.json:
        print(json.dumps(dict(summary, depth=depth, image_size=image_size, channels=channels,
                              num_classes=num_classes, model_dir=FLAGS.model_dir), sort_keys=True))
    else:
        print('\n'.join(([title] if title else []) + format_table(summary, depth, image_size, channels,
                                                                  num_classes)))


def cli_main():
    run_flags.define_summary()
    cli.run('resnet_graph.summary', main)


if __name__ == '__main__':
    cli_main()
