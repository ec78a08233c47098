"""resnet_graph.plot: the curves read back from the event files, the figure, and its errors."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SMALL, error_lines, run_cli
from resnet_graph import plot

pytestmark = pytest.mark.slow  # trains runs to draw their curves


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """A tiny run (4 steps, train summaries at 2 and 4, validations at 2 and 4) and a copy of it: two run dirs."""
    root = tmp_path_factory.mktemp('plot')
    result = run_cli('train', *SMALL, '--model_dir', root / 'a', '--max_steps', 4, '--eval_every', 2)
    assert result.returncode == 0, result.stderr
    shutil.copytree(root / 'a', root / 'b')
    return root / 'a', root / 'b'


def test_curves_have_the_steps_of_the_event_files_and_the_best(runs):
    from test_summaries import read_events
    run = plot.read_run(str(runs[0]))
    for split in ('train', 'eval'):
        steps, last = read_events(runs[0] / split)
        for tag in ('loss', 'cross_entropy', 'accuracy', 'top5_accuracy'):
            assert [step for step, _ in run[split][tag]] == steps[tag] == [2, 4], (split, tag)
            assert run[split][tag][-1][1] == last[tag]
    assert [step for step, _ in run['train']['learning_rate']] == [2, 4]
    assert 'learning_rate' not in run['eval'] and 'inputs/image/0' not in run['train']
    best = run['best']
    assert best['step'] in (2, 4)
    assert dict(run['eval']['accuracy'])[best['step']] == pytest.approx(best['validation_accuracy'], abs=1e-6)

    figure = plot.draw([run], str(runs[0].parent / 'one.png'))
    assert (runs[0].parent / 'one.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    loss, accuracy, learning_rate = figure.axes
    marks = [line for line in accuracy.lines if line.get_label().endswith('best (step %d)' % best['step'])]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [best['step']]
    assert list(marks[0].get_ydata()) == [best['validation_accuracy']]
    assert [list(line.get_xdata()) for line in loss.lines] == [[2, 4], [2, 4], [best['step']] * 2]  # train, eval, best
    assert learning_rate.get_yscale() == 'log'


def test_a_resumed_run_keeps_the_newest_value_of_a_repeated_step(tmp_path):
    import tensorflow as tf
    for index, (steps, value) in enumerate((([1, 2, 3], 1.0), ([3, 4], 2.0))):
        directory = tmp_path / str(index)  # one writer per folder, then side by side: names sort by time
        with tf.Graph().as_default():
            writer = tf.compat.v1.summary.FileWriter(str(directory))
            for step in steps:
                writer.add_summary(tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
                    tag='loss', simple_value=value + step)]), step)
            writer.close()
        for name in os.listdir(directory):
            os.rename(directory / name, tmp_path / ('events.out.tfevents.%d.host' % (1000 + index)))
    assert plot.read_scalars(str(tmp_path)) == {'loss': [(1, 2.0), (2, 3.0), (3, 5.0), (4, 6.0)]}


def test_an_event_file_cut_short_by_a_kill_is_read_up_to_the_cut(tmp_path):
    import tensorflow as tf
    with tf.Graph().as_default():
        writer = tf.compat.v1.summary.FileWriter(str(tmp_path))
        for step in (1, 2, 3):
            writer.add_summary(tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
                tag='loss', simple_value=float(step))]), step)
        writer.close()
    path, = [tmp_path / name for name in os.listdir(tmp_path)]
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the last record cut in the middle
    assert plot.read_scalars(str(tmp_path)) == {'loss': [(1, 1.0), (2, 2.0)]}


def test_command_draws_two_runs_on_one_figure(runs, tmp_path):
    out = tmp_path / 'curves.png'
    result = run_cli('plot', '--model_dir', runs[0], '--model_dir', runs[1], '--out', out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 10000
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[-1] == 'wrote %s' % out
    assert lines[0].startswith('%s: 2 train points, 2 evaluations, best validation accuracy' % runs[0])
    assert lines[1].startswith('%s: 2 train points' % runs[1])


def test_missing_matplotlib_is_one_clear_line(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # import matplotlib now raises ImportError
    with pytest.raises(plot.UsageError, match=r"pip install 'resnet_graph\[plot\]'"):
        plot.require_matplotlib()
    # The command line: a matplotlib that fails to import shadows the installed one.
    (tmp_path / 'matplotlib').mkdir()
    (tmp_path / 'matplotlib' / '__init__.py').write_text('raise ImportError("simulated")\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    result = subprocess.run([sys.executable, '-m', 'resnet_graph.plot', '--model_dir', str(runs[0]), '--out',
                             str(tmp_path / 'x.png')], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and error_lines(result.stderr) == [
        "resnet_graph.plot: error: matplotlib is not installed: pip install 'resnet_graph[plot]' "
        "(or pip install matplotlib)"]
    assert not (tmp_path / 'x.png').exists()


def test_bad_input_is_one_line_and_exit_2(runs, tmp_path):
    empty = tmp_path / 'empty'
    shutil.copytree(runs[0], empty, ignore=shutil.ignore_patterns('events.out.tfevents.*'))
    cases = [([], '--model_dir is required'),
             (['--model_dir', tmp_path / 'none'], 'not a run directory'),
             (['--model_dir', runs[0], '--model_dir', tmp_path], 'not a run directory'),
             (['--model_dir', empty], 'no event files')]
    for args, message in cases:
        result = run_cli('plot', *args, '--out', tmp_path / 'x.png')
        lines = error_lines(result.stderr)
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr)
    assert not (tmp_path / 'x.png').exists()
