"""scripts/sweep_defaults.py: one train command per setting and seed, its results recorded as they came."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = os.path.join(ROOT, 'scripts', 'sweep_defaults.py')


@pytest.mark.slow  # two training runs
def test_each_setting_and_seed_is_one_recorded_run(tmp_path):
    out = tmp_path / 'results' / 'sweep.json'
    tiny = 'depth=8,image_size=16,batch_size=32,max_steps=%d,eval_every=2'
    done = subprocess.run([sys.executable, SCRIPT, '--seeds', '3', '--set', tiny % 2, '--set', tiny % 4,
                           '--out', str(out)], cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record['command'] == 'python -m resnet_graph.train --depth 50' and record['seeds'] == [3]
    assert record['cpu_model'] and record['commit'] is not None
    runs = record['runs']
    assert [(r['flags'][-2:], r['seed'], r['returncode']) for r in runs] == [
        (['max_steps=2', 'eval_every=2'], 3, 0), (['max_steps=4', 'eval_every=2'], 3, 0)]
    for run in runs:
        assert run['best_step'] in (2, 4) and run['best_step'] <= int(run['flags'][-2].split('=')[1])
        assert 0.0 <= run['best_validation_accuracy'] <= 1.0 and 0.0 <= run['test_accuracy'] <= 1.0
        assert run['wall_s'] > 0
    assert done.stdout.count('\n') == 2  # a line per run as it ends


def test_a_failed_run_is_recorded_with_its_error(tmp_path):
    out = tmp_path / 'sweep.json'
    done = subprocess.run([sys.executable, SCRIPT, '--seeds', '0', '--set', 'depth=7', '--out', str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run, = json.loads(out.read_text())['runs']
    assert run['returncode'] == 2 and 'depth' in run['error'] and 'test_accuracy' not in run
