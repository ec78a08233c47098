"""Kill -9 at random moments, again and again: every kill resumes, and the run ends as an uninterrupted one.

The depth-8 ResNet of test_reliability.FAST: 80 steps, validated every 2, outlast the kills.
RESNET_GRAPH_KILLS (default 4) sets the number of kills;
RESNET_GRAPH_KILL_SEED their timing.
"""
import glob
import os
import random
import time

import pytest
import tensorflow as tf

from conftest import run_cli
from resnet_graph.training.run_dir import RunDir
from test_reliability import start_training, wait_for

pytestmark = pytest.mark.slow  # a training process killed at random moments, resumed each time


def eval_accuracy_by_step(model_dir):
    """step -> the validation accuracy of the latest evaluation at that step (re-runs after a kill win)."""
    events = []
    for path in glob.glob(os.path.join(model_dir, 'eval', 'events.out.tfevents.*')):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == 'accuracy':
                    events.append((event.wall_time, event.step, value.simple_value))
    return {step: accuracy for _, step, accuracy in sorted(events)}


def test_kill_fuzz_every_kill_resumes_to_the_same_final_step(tmp_path):
    kills = int(os.environ.get('RESNET_GRAPH_KILLS', '4'))
    model_dir, steps = tmp_path / 'run', 80
    rng = random.Random(int(os.environ.get('RESNET_GRAPH_KILL_SEED', '0')))
    survived = 0
    for _ in range(3 * kills):
        if survived == kills:
            break
        proc = start_training(model_dir, '--max_steps', steps, '--eval_every', 2)
        wait_for(proc, 'training ResNet-8')
        time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is None:
            proc.kill()
            survived += 1
        proc.wait()
        proc.stdout.close()
        best = RunDir(str(model_dir)).load_best()  # never half written
        assert best is None or 0 <= best['validation_accuracy'] <= 1
    assert survived == kills
    result = run_cli('train', '--model_dir', model_dir)
    assert result.returncode == 0, result.stderr
    assert 'step %d/%d' % (steps, steps) in result.stdout or 'resuming from' in result.stdout
    run = RunDir(str(model_dir))
    assert run.latest_checkpoint().endswith('model.ckpt-%d' % steps)
    for prefix in run.checkpoints() + run.checkpoints(run.best_dir):
        assert tf.train.load_checkpoint(prefix).get_tensor('global_step') == int(prefix.rsplit('-', 1)[1])
    accuracies = eval_accuracy_by_step(str(model_dir))
    assert sorted(accuracies) == list(range(2, steps + 1, 2))
    best = run.load_best()
    assert best['validation_accuracy'] == pytest.approx(max(accuracies.values()), abs=1e-6)
    assert accuracies[best['step']] == pytest.approx(best['validation_accuracy'], abs=1e-6)
    assert run.best_checkpoint().endswith('model.ckpt-%d' % best['step'])
    print('survived %d kill -9 in a row' % survived)
