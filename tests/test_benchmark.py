"""The benchmark command in a tiny configuration: every field of its JSON, with sane values (no speed asserted)."""
import json

import pytest

from conftest import error_lines, run_cli
from resnet_graph.bench_worker import forward_flops

FIELDS = ('images_per_sec', 'keras_images_per_sec', 'ratio', 'first_step_s', 'keras_first_step_s', 'peak_rss_mb',
          'keras_peak_rss_mb', 'gflops', 'matmul_gflops')


def test_forward_flops_of_resnet50_at_224_are_the_known_4_1_g_multiply_adds():
    # 2 FLOPs per multiply-add of the convolutions and the dense layer (BN, ReLU, pooling not counted).
    assert forward_flops(50, 224, 3, 1000) == 2 * 4089184256
    assert forward_flops(18, 224, 3, 1000) == 2 * 1814073344


def test_benchmark_json_has_every_field_with_sane_values(monkeypatch):
    monkeypatch.delenv('TF_CPU_ALLOCATOR_USE_BFC', raising=False)
    result = run_cli('benchmark', '--depth', 18, '--image_size', 32, '--batch_size', 2, '--steps', 2, '--warmup', 1,
                     '--compare', 'keras', '--json')
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for field in FIELDS:
        assert isinstance(report[field], float) and report[field] > 0, field
    assert report['ratio'] == pytest.approx(report['images_per_sec'] / report['keras_images_per_sec'])
    assert report['keras_setting'] in ('default', 'jit_compile')
    by_setting = report['keras_images_per_sec_by_setting']
    assert report['keras_images_per_sec'] == max(by_setting.values())
    assert report['gflops'] == pytest.approx(report['images_per_sec'] * 3 * forward_flops(18, 32, 3, 10) / 1e9)
    assert 100 < report['peak_rss_mb'] < 20000 and report['first_step_s'] < 300
    assert (report['depth'], report['image_size'], report['batch_size'], report['mode']) == (18, 32, 2, 'train')
    # Ours on the command lines' allocator, Keras on TensorFlow's default, as its users run it.
    assert (report['cpu_allocator'], report['keras_cpu_allocator']) == ('bfc', 'default')


@pytest.mark.parametrize('args,message', [
    (['--depth', '19'], '--depth 19 is not supported'),
    (['--image_size', '16', '--compare', 'keras'], '--image_size must be at least 32 with --compare keras'),
    (['--steps', '0'], '--steps must be at least 1'),
    (['--mode', 'serve'], 'mode'),
])
def test_bad_benchmark_flags_exit_2_with_one_line(args, message):
    result = run_cli('benchmark', *args)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    line, = error_lines(result.stderr)
    assert message in line
