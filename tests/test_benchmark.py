"""The benchmark command in a tiny configuration: every field of its JSON, with sane values (no speed asserted)."""
import json

import pytest

from conftest import error_lines, run_cli
from resnet_graph.fastconv import cpu
from resnet_graph.bench import op_classes
from resnet_graph.bench.worker import forward_flops

pytestmark = pytest.mark.slow  # benchmark processes, Keras included

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
    # Ours on the command lines' allocator (config.CPU_BFC_ALLOCATOR 'auto': BFC where the CPU lacks AVX-512),
    # Keras on TensorFlow's default, as its users run it.
    ours = 'default' if cpu.has_avx512() else 'bfc'
    assert (report['cpu_allocator'], report['keras_cpu_allocator']) == (ours, 'default')
    # The traced step: every class present; a ResNet-18 step runs convolutions, batch norm and Adam.
    assert set(report['op_seconds']) == set(op_classes.NAMES)
    assert min(report['op_seconds'][k] for k in ('convolution', 'batch norm', 'optimizer')) > 0


def test_op_time_is_summed_per_class_with_onednn_kernels_named_as_their_op():
    from tensorflow.core.framework.step_stats_pb2 import StepStats
    stats = StepStats()
    device = stats.dev_stats.add(device='/job:localhost/replica:0/task:0/device:CPU:0')
    for label, micros in (('a = _MklNativeConv2D(x, k)', 3000), ('b = Conv2DBackpropFilter(x, k, g)', 1000),
                          ('c = _MklNativeFusedBatchNormV3(a)', 500), ('d = ResourceApplyAdam(v)', 250),
                          ('e = _MklMatMul(a, w)', 125), ('f = Relu(c)', 100), ('g = _Recv()', 20),
                          ('h = MysteryOp(a)', 5)):
        device.node_stats.add(node_name=label.split(' =')[0], timeline_label=label, all_end_rel_micros=micros)
    device.node_stats.add(node_name='_SOURCE', all_end_rel_micros=2)  # no label: its node name is its type
    assert op_classes.seconds_by_class(stats) == pytest.approx(
        {'convolution': 0.004, 'matmul': 0.000125, 'batch norm': 0.0005, 'pooling': 0.0, 'optimizer': 0.00025,
         'layout and copies': 0.00002, 'elementwise and reductions': 0.0001, 'other': 0.000007})


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


def test_repeats_report_medians_and_the_median_of_each_repeats_own_ratio(monkeypatch):
    # The workloads replaced by fixed results (seconds a step), so the figures are exact: the end-to-end
    # test above runs the real processes. The Keras setting is the faster by its median over the repeats.
    from resnet_graph import benchmark
    seconds = {'ours': iter([1.0, 2.0, 4.0]), 'default': iter([3.0, 3.0, 12.0]), 'jit_compile': iter([2.0, 6.0, 4.0])}
    matmul = iter([100.0, 300.0, 200.0])

    def fake_worker(spec):
        if spec['kind'] == 'matmul':
            return {'matmul_gflops': next(matmul)}
        side = 'ours' if spec['kind'] == 'ours' else ('jit_compile' if spec['xla'] else 'default')
        step = next(seconds[side])
        result = dict(seconds_per_step=step, first_step_s=10 * step, peak_rss_mb=100 * step, forward_flops=1e9)
        return dict(result, op_seconds={'convolution': step, 'other': step / 2}) if side == 'ours' else result

    monkeypatch.setattr(benchmark, 'run_worker', fake_worker)
    spec = dict(batch_size=8, mode='train', xla='off', compare='keras', repeats=3)
    report = benchmark.measure(spec)
    assert report['images_per_sec'] == 4.0 and report['matmul_gflops'] == 200.0  # 8 / median(1, 2, 4)
    assert (report['first_step_s'], report['peak_rss_mb']) == (20.0, 200.0)
    assert report['gflops'] == 12.0 and report['fraction_of_matmul'] == 0.06
    # Medians 3 (default) and 4 (jit_compile): default is the reference, 8 / 3 images/sec.
    assert report['keras_setting'] == 'default' and report['keras_images_per_sec'] == pytest.approx(8 / 3)
    assert report['keras_images_per_sec_by_setting'] == pytest.approx({'default': 8 / 3, 'jit_compile': 2.0})
    assert (report['keras_first_step_s'], report['keras_peak_rss_mb']) == (30.0, 300.0)
    assert [row['ratio'] for row in report['by_repeat']] == [3.0, 1.5, 3.0]  # default's 3, 3, 12 against 1, 2, 4
    assert report['ratio'] == 3.0  # not 4 / (8 / 3) = 1.5: each repeat's ratio pairs processes run close in time
    assert [row['matmul_gflops'] for row in report['by_repeat']] == [100.0, 300.0, 200.0]
    assert report['op_seconds'] == {'convolution': 2.0, 'other': 1.0}  # each class's median over the repeats


@pytest.mark.slow
def test_the_real_data_pipeline_feeds_every_timed_step_and_the_traced_one():
    result = run_cli('benchmark', '--depth', 18, '--image_size', 32, '--batch_size', 16, '--steps', 2, '--warmup', 1,
                     '--data', 'real', '--dataset', 'digits', '--json')
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['data'] == 'real' and report['images_per_sec'] > 0 and report['op_seconds']['convolution'] > 0
