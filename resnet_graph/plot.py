"""python -m resnet_graph.plot --model_dir DIR [--model_dir DIR2 ...] [--out curves.png]: curves without TensorBoard.

Reads the scalar summaries in DIR/train and DIR/eval and draws, against the
step, the training (solid) and validation (dashed) loss and top-1 accuracy
and the learning rate, one colour per run, with the best checkpoint
(best.json) marked. Needs matplotlib: pip install 'resnet_graph[plot]'.
"""
import glob
import io
import os

from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import UsageError, require, require_directory, require_named
from resnet_graph.training.run_dir import RunDir, atomic_write_bytes

FLAGS = run_flags.FLAGS
PANELS = (('loss', 'loss (cross-entropy + weight decay)'), ('accuracy', 'top-1 accuracy'),
          ('learning_rate', 'learning rate'))


def event_files(directory):
    return sorted(glob.glob(os.path.join(directory, 'events.out.tfevents.*')))  # oldest first: the name holds the time


def read_scalars(directory):
    """An event folder -> {tag: [(step, value), ...]} of its scalar summaries, sorted by step.

    Where several event files hold a step (a resumed run repeats the steps after
    its last checkpoint), the newest file's value is kept. A file cut short (its
    writer was killed mid-record) is read up to the cut.
    """
    import tensorflow as tf
    scalars = {}
    for path in event_files(directory):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.WhichOneof('value') == 'simple_value':
                        scalars.setdefault(value.tag, {})[event.step] = value.simple_value
        except tf.errors.DataLossError:
            pass  # the records before the cut are whole
    return {tag: sorted(points.items()) for tag, points in scalars.items()}


def read_run(model_dir):
    """A run directory -> dict(name, train, eval: read_scalars of train/ and eval/, best: best.json or None)."""
    run = RunDir(model_dir, writable=False)
    return dict(name=model_dir, train=read_scalars(run.join('train')), eval=read_scalars(run.join('eval')),
                best=run.load_best())


def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("matplotlib is not installed: pip install 'resnet_graph[plot]' (or pip install matplotlib)")


def draw(runs, out):
    """Draws runs (read_run dicts) side by side in three panels and saves the figure to ``out``; returns it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(16, 4.5), layout='constrained')
    FigureCanvasAgg(figure)
    axes = dict(zip([tag for tag, _ in PANELS], figure.subplots(1, len(PANELS))))
    for index, run in enumerate(runs):
        color = 'C%d' % (index % 10)
        for split, style in (('train', '-'), ('eval', '--')):
            for tag, ax in axes.items():
                if run[split].get(tag):
                    steps, values = zip(*run[split][tag])
                    ax.plot(steps, values, style, color=color, label='%s %s' % (run['name'], split))
        if run['best']:
            best = run['best']
            for tag in ('loss', 'accuracy'):
                axes[tag].axvline(best['step'], color=color, linestyle=':', linewidth=1)
            axes['accuracy'].plot([best['step']], [best['validation_accuracy']], '*', color=color, markersize=12,
                                  label='%s best (step %d)' % (run['name'], best['step']))
    for tag, title in PANELS:
        axes[tag].set(title=title, xlabel='step')
        axes[tag].grid(alpha=0.3)
        axes[tag].legend(fontsize='small')
    if axes['learning_rate'].lines:
        axes['learning_rate'].set_yscale('log')
    extension = os.path.splitext(out)[1][1:]
    data = io.BytesIO()
    figure.savefig(data, dpi=100, format=extension or None)
    atomic_write_bytes(out, data.getvalue())  # a kill leaves no half figure
    return figure


def main(args):
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    require_directory('model_dir', FLAGS.model_dir, 'a run directory written by resnet_graph.train (repeat '
                      'the flag to compare runs)')
    require_named('out', FLAGS.out, 'the PNG file to write', 'file')
    require_matplotlib()
    for model_dir in FLAGS.model_dir:
        run = RunDir(model_dir, writable=False)
        run.require_config()
        require(event_files(run.join('train')) or event_files(run.join('eval')),
                '%s has no event files in train/ or eval/ yet; train it first' % model_dir)
    runs = [read_run(model_dir) for model_dir in FLAGS.model_dir]
    try:
        draw(runs, FLAGS.out)
    except (OSError, ValueError) as e:  # ValueError: an extension matplotlib cannot write
        raise UsageError('cannot write --out %s: %s' % (FLAGS.out, getattr(e, 'strerror', None) or e))
    for run in runs:
        best = run['best']
        print('%s: %d train points, %d evaluations%s' % (
            run['name'], len(run['train'].get('loss', [])), len(run['eval'].get('accuracy', [])),
            ', best validation accuracy %.4f at step %d' % (best['validation_accuracy'], best['step']) if best else ''))
    print('wrote %s' % FLAGS.out)


def cli_main():
    run_flags.define_plot()
    cli.run('resnet_graph.plot', main)


if __name__ == '__main__':
    cli_main()
