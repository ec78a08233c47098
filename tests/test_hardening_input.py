"""Issue 20, items 6 and 9-13: input and command-line defects, each run end to end in a subprocess."""
import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SMALL, error_lines, run_cli

COMMANDS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'resnet_graph', '*.py'))
                  if 'def cli_main' in open(p).read())


def test_every_command_is_found():
    assert {'train', 'evaluate', 'predict', 'export', 'plot', 'summary', 'benchmark', 'cluster',
            'import_keras'} <= set(COMMANDS)


@pytest.mark.parametrize('command', COMMANDS)
def test_help_lists_every_flag_with_default_and_exits_0(command):
    # the flags the command defines: its cli_main run with cli.run replaced by a printer
    code = ('import sys; from absl import flags; from resnet_graph import cli; import resnet_graph.%s as m; '
            'cli.run = lambda *a, **k: print(" ".join(n for mod, fl in flags.FLAGS.flags_by_module_dict().items() '
            'if not mod.startswith("absl") for n in sorted(f.name for f in fl))); m.cli_main()' % command)
    names = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=ROOT),
                           capture_output=True, text=True, timeout=60).stdout.split()
    assert len(names) >= 2
    for arg in ('--help', '-h', '--helpfull'):
        result = run_cli(command, arg, timeout=60)
        assert result.returncode == 0 and not result.stderr, (arg, result.stderr)
        assert 'flags:' in result.stdout
        for name in names:
            line = next((l for l in result.stdout.splitlines() if re.match(r'  --(\[no\])?%s:' % name, l)), None)
            assert line and '(default:' in line, (arg, name, result.stdout)
    assert '--flagfile' in result.stdout  # --helpfull: absl's own flags too


def test_a_bad_flag_after_tensorflow_loads_is_one_line_without_tf_cpp_min_log_level(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env['PYTHONPATH'] = ROOT
    # NCHW on a machine without a GPU is refused after TensorFlow has loaded (it asks TensorFlow for GPUs).
    result = subprocess.run([sys.executable, '-m', 'resnet_graph.train', '--data_format', 'NCHW', '--model_dir',
                             str(tmp_path / 'run')] + SMALL, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('resnet_graph.train: error: --data_format'), result.stderr


def test_importing_the_package_sets_no_environment():
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env['PYTHONPATH'] = ROOT
    out = subprocess.run([sys.executable, '-c', 'import os, resnet_graph, resnet_graph.cli; '
                          'print(os.environ.get("TF_CPP_MIN_LOG_LEVEL"))'],
                         env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == 'None'


def test_the_users_own_tf_cpp_min_log_level_is_kept():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='1')
    code = ('import os, sys; from resnet_graph import cli; cli.quiet_tensorflow(); '
            'print(os.environ["TF_CPP_MIN_LOG_LEVEL"], any(type(f).__name__ == "_QuietTensorFlowImport" '
            'for f in sys.meta_path))')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.split() == ['1', 'False']
