"""python -m resnet_graph.evaluate --model_dir DIR: top-1, top-5, loss and image count of a checkpoint on a split.

--json adds the confusion matrix (rows: true class, columns: predicted) for networks of up to
config.CONFUSION_MAX_CLASSES (100) classes; --confusion adds it for any, --noconfusion for none.
--dataset NAME --data_dir DIR evaluates on another data set (an imported run records none) with the
run's own preprocessing; its class count must be the network's, or one less where the network's
class 0 is background (slim v2, official r1: data class k is then scored as the network's class k + 1).
"""
import json

import config
from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import require, require_directory
from resnet_graph.training.run_dir import RunDir

FLAGS = run_flags.FLAGS


def main(args):
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    require(FLAGS.json or FLAGS.confusion is None, '--%sconfusion adds the confusion matrix to --json\'s document; '
            'add --json' % ('' if FLAGS.confusion else 'no'))
    require_directory('model_dir', FLAGS.model_dir, 'the run directory written by resnet_graph.train')
    RunDir(FLAGS.model_dir).require_config()  # before TensorFlow loads: a wrong path fails fast
    if FLAGS.dataset is not None:
        from resnet_graph.data import SOURCES
        require(FLAGS.dataset in SOURCES, '--dataset %r is unknown; valid: %s' % (FLAGS.dataset, ', '.join(SOURCES)))
        require(FLAGS.dataset == 'digits' or FLAGS.data_dir, '--dataset %s needs --data_dir DIR' % FLAGS.dataset)
    from resnet_graph.serving.inference import RestoredRun
    restored = RestoredRun(FLAGS.model_dir, FLAGS.checkpoint, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir)
    metrics = dict(restored.evaluate(FLAGS.split), split=FLAGS.split, checkpoint=restored.checkpoint)
    confusion = metrics.pop('confusion')
    if FLAGS.confusion or (FLAGS.confusion is None and len(confusion) <= config.CONFUSION_MAX_CLASSES):
        metrics['confusion'] = confusion.tolist()
    restored.close()
    if FLAGS.json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        print('%s split, %s: top-1 %.4f top-5 %.4f loss %.4f (%d images)%s'
              % (metrics['split'], metrics['checkpoint'], metrics['accuracy'], metrics['top5'], metrics['loss'],
                 metrics['images'], '; data set %s, its class k scored as class k + 1 (class 0 is background)'
                 % metrics['dataset'] if metrics['label_offset'] else ''))


def cli_main():
    run_flags.define_evaluate()
    cli.run('resnet_graph.evaluate', main)


if __name__ == '__main__':
    cli_main()
