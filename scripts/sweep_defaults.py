"""Runs the train command over a small grid of settings and seeds; writes one JSON record of what each run gave.

    python scripts/sweep_defaults.py --set 'epochs=8' --set 'epochs=12' --seeds 0,1,2 \
        --out benchmarks/results/defaults/2026-12-03_zen4_epochs.json

Each ``--set`` is one setting: comma-separated flag=value pairs added to
``python -m resnet_graph.train --depth 50`` (the default command). Every
setting runs once per seed, each in a fresh run directory, one after the
other. The record holds per run the wall time of the whole command, the best
validation accuracy and its step, and the test accuracy of the best
checkpoint, plus where it was measured (commit, CPU, load). Defaults are
chosen on validation accuracy and wall time; the test accuracy is reported,
never used to choose.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_LINE = re.compile(r'test accuracy of the best checkpoint: ([0-9.]+)')


def run_once(flags, seed, workdir):
    """One train command; returns its record (wall_s, best validation and step, test accuracy, exit code)."""
    model_dir = tempfile.mkdtemp(prefix='sweep-', dir=workdir)
    command = [sys.executable, '-m', 'resnet_graph.train', '--depth', '50', '--seed', str(seed),
               '--model_dir', model_dir] + ['--%s' % flag for flag in flags]
    start = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - start
    record = dict(flags=flags, seed=seed, wall_s=round(wall, 1), returncode=done.returncode,
                  load_average=os.getloadavg()[0])  # the wall time is only comparable at a like load
    test = TEST_LINE.search(done.stdout + done.stderr)
    best_path = os.path.join(model_dir, 'best.json')
    if done.returncode == 0 and test and os.path.exists(best_path):
        with open(best_path) as f:
            best = json.load(f)
        record.update(best_validation_accuracy=best['validation_accuracy'], best_step=best['step'],
                      test_accuracy=float(test.group(1)))
    else:
        record['error'] = (done.stderr.strip().splitlines() or [''])[-1]
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--set', action='append', required=True, dest='settings',
                        help='comma-separated flag=value pairs of one setting (repeat the option)')
    parser.add_argument('--seeds', default='0,1,2')
    parser.add_argument('--out', required=True, help='the JSON record to write')
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from resnet_graph.benchmark import provenance
    from resnet_graph.training.run_dir import atomic_write_json
    seeds = [int(s) for s in args.seeds.split(',')]
    record = dict(provenance(), command='python -m resnet_graph.train --depth 50', seeds=seeds, runs=[])
    with tempfile.TemporaryDirectory() as workdir:
        for setting in args.settings:
            flags = [f for f in setting.split(',') if f]
            for seed in seeds:
                record['runs'].append(run_once(flags, seed, workdir))
                print(json.dumps(record['runs'][-1]), flush=True)
                os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
                atomic_write_json(args.out, record)
    return 0


if __name__ == '__main__':
    sys.exit(main())
