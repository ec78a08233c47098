"""scripts/perf_table.py: the performance tables are generated from benchmark results, row for row."""
import json
import os
import subprocess
import sys

from conftest import ROOT

SCRIPT = os.path.join(ROOT, 'scripts', 'perf_table.py')
MACHINE = dict(cpu_model='AMD EPYC (family 25, model 17)', cpu_count=2, cpu_flags=['avx2', 'avx512f', 'fma'],
               tensorflow_version='2.21.0', keras_version='3.15.1')
# Two results as benchmark --json writes them (the fields the tables read).
RESNET50 = dict(MACHINE, depth=50, image_size=32, batch_size=128, mode='train', channels=3, num_classes=10,
                data='synthetic', dataset='digits', data_dir='', compare='keras', xla='off', conv='shape_aware',
                fold_bn='off', dtype='float32', steps=6, warmup=2, repeats=3, images_per_sec=289.61,
                fraction_of_matmul=0.7012, keras_images_per_sec=174.93, keras_setting='default', ratio=1.6556,
                first_step_s=8.43, keras_first_step_s=21.8, peak_rss_mb=1743.2, keras_peak_rss_mb=1784.0,
                commit='034e5fc' + '0' * 33, load_average=[0.4, 1.2], measured_at='2026-12-02T15:00:00Z',
                op_seconds={'convolution': 0.5, 'matmul': 0.25, 'batch norm': 0.1, 'pooling': 0.0, 'optimizer': 0.05,
                            'layout and copies': 0.05, 'elementwise and reductions': 0.04, 'other': 0.01})
INFER = dict(MACHINE, depth=50, image_size=224, batch_size=32, mode='infer', channels=3, num_classes=10,
             data='synthetic', dataset='digits', data_dir='', compare='', xla='off', conv='shape_aware', fold_bn='on',
             dtype='bfloat16', steps=4, warmup=1, repeats=1, images_per_sec=6.5212, fraction_of_matmul=0.96,
             keras_images_per_sec=None, keras_setting=None, ratio=None, first_step_s=5.31, keras_first_step_s=None,
             peak_rss_mb=1212.0, keras_peak_rss_mb=None, commit='abcdef0123' + '0' * 30 + '-dirty',
             load_average=3.4, measured_at='2026-12-03T10:00:00Z')
README = '# x\n\nbefore\n<!-- perf_table:summary -->\nold table\n<!-- /perf_table:summary -->\nafter\n'
PERFORMANCE = ('intro\n<!-- perf_table:details -->\n<!-- /perf_table:details -->\nops\n<!-- perf_table:ops -->\n'
               '<!-- /perf_table:ops -->\nend\n')


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def setup_files(tmp_path, results):
    results_dir = tmp_path / 'results'
    results_dir.mkdir()
    for name, report in results.items():
        write(results_dir / name, json.dumps(report))
    write(tmp_path / 'README.md', README)
    write(tmp_path / 'performance.md', PERFORMANCE)
    return ['--results', str(results_dir), '--readme', str(tmp_path / 'README.md'),
            '--performance', str(tmp_path / 'performance.md')]


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True, text=True, timeout=120)


def between(text, start, end):
    return text.split(start)[1].split(end)[0].strip('\n').splitlines()


def test_tables_are_generated_row_for_row_between_the_markers(tmp_path):
    args = setup_files(tmp_path, {'r50_train.json': RESNET50, 'r50_infer.json': INFER})
    result = run(*args)
    assert result.returncode == 0, result.stderr
    readme = read(tmp_path / 'README.md')
    assert readme.startswith('# x\n\nbefore\n') and readme.endswith('<!-- /perf_table:summary -->\nafter\n')
    assert between(readme, '<!-- perf_table:summary -->', '<!-- /perf_table:summary -->') == [
        '| ResNet | mode | image | batch | resnet_graph img/s | Keras img/s | ratio | CPU | reproduce |',
        '|---|---|---|---|---|---|---|---|---|',
        # Sorted by configuration: infer before train; only the non-default flags beyond the row's own.
        # A load above the cores + 1 marks the machine busy.
        '| 50 | infer | 224 | 32 | 6.52 | - | - | AMD EPYC (family 25, model 17), 2 cores, busy (load 3.4) | '
        '`python -m resnet_graph.benchmark --depth 50 --image_size 224 --batch_size 32 --mode infer --steps 4 '
        '--warmup 1 --fold_bn on --dtype bfloat16 --json` |',
        '| 50 | train | 32 | 128 | 289.6 | 174.9 | 1.66x | AMD EPYC (family 25, model 17), 2 cores | '
        '`python -m resnet_graph.benchmark --depth 50 --image_size 32 --batch_size 128 --mode train --steps 6 '
        '--warmup 2 --compare keras --repeats 3 --json` |']
    assert between(read(tmp_path / 'performance.md'), '<!-- perf_table:details -->', '<!-- /perf_table:details -->') == [
        '**AMD EPYC (family 25, model 17), 2 cores**, TensorFlow 2.21.0, Keras 3.15.1; ISA flags: avx2 avx512f',
        '',
        '| ResNet | mode | image | batch | dtype | resnet_graph img/s (% of matmul) | Keras img/s (setting) | ratio '
        '| first step s (ours / Keras) | peak RSS MB (ours / Keras) | repeats | load | commit | file |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
        '| 50 | infer | 224 | 32 | bfloat16 | 6.52 (96 %) | - | - | 5.3 / - | 1,212 / - | 1 | 3.4 | abcdef0-dirty '
        '| `r50_infer.json` |',
        '| 50 | train | 32 | 128 | float32 | 289.6 (70 %) | 174.9 (default) | 1.66x | 8.4 / 21.8 | 1,743 / 1,784 | 3 '
        '| 0.4 / 1.2 | 034e5fc | `r50_train.json` |']
    # The op classes' shares of the traced step (only the result that has one), and op time over wall time.
    assert between(read(tmp_path / 'performance.md'), '<!-- perf_table:ops -->', '<!-- /perf_table:ops -->') == [
        '| ResNet | mode | image | batch | dtype | CPU | convolution | matmul | batch norm | pooling | optimizer '
        '| layout and copies | elementwise and reductions | other | op time / step | file |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
        '| 50 | train | 32 | 128 | float32 | AMD EPYC (family 25, model 17), 2 cores | 50 % | 25 % | 10 % | 0 % '
        '| 5 % | 5 % | 4 % | 1 % | 2.26 | `r50_train.json` |']
    # Generated, so a second run changes nothing and --check agrees.
    assert run(*args).stdout == '' and run('--check', *args).returncode == 0


def test_check_reports_a_stale_file_and_writes_nothing(tmp_path):
    args = setup_files(tmp_path, {'r50_train.json': RESNET50})
    result = run('--check', *args)
    assert result.returncode == 1 and 'out of date' in result.stdout
    assert read(tmp_path / 'README.md') == README and read(tmp_path / 'performance.md') == PERFORMANCE


def test_a_file_that_is_not_a_result_or_a_missing_marker_is_one_line_and_exit_2(tmp_path):
    args = setup_files(tmp_path, {'notes.json': {'depth': 50}})
    result = run(*args)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    line, = result.stderr.splitlines()
    assert 'notes.json lacks image_size' in line
    (tmp_path / 'x').mkdir()
    args = setup_files(tmp_path / 'x', {})
    write(tmp_path / 'x' / 'README.md', 'no markers\n')
    result = run(*args)
    line, = result.stderr.splitlines()
    assert result.returncode == 2 and 'README.md needs the markers <!-- perf_table:summary -->' in line
    assert read(tmp_path / 'x' / 'performance.md') == PERFORMANCE  # nothing written: every file checked first


def test_the_benchmark_records_the_first_cpus_model_and_isa_flags(tmp_path):
    from resnet_graph import benchmark
    write(tmp_path / 'cpuinfo', 'processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n'
          'model name\t: AMD EPYC 9R14\nflags\t\t: fpu sse4_2 avx2 fma avx512f avx512_bf16 amx_tile vmx\n\n'
          'processor\t: 1\nmodel name\t: another CPU\n')
    assert benchmark.cpu_description(str(tmp_path / 'cpuinfo')) == (
        'AMD EPYC 9R14 (family 25, model 17)', ['amx_tile', 'avx2', 'avx512_bf16', 'avx512f', 'fma', 'sse4_2'])
    where = benchmark.provenance()
    assert where['tensorflow_version'] and where['cpu_count'] >= 1
    assert where['commit'] is None or len(where['commit'].split('-')[0]) == 40
