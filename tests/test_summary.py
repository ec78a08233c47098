"""python -m resnet_graph.summary: per-stage shapes, parameters and multiply-adds read from the built graph."""
import json

import pytest

from conftest import error_lines, run_cli
from resnet_graph.nets.counts import summarize
from resnet_graph.summary import format_table

# ResNet-50 v1.5 at 224x224x3, 1000 classes, convolutions + dense layer: the known 4.09e9 multiply-adds
# of torchvision's ResNet-50 (whose parameter count 25,557,032 is tested in test_model.py).
RESNET50_MACS = 4089184256


@pytest.mark.slow
def test_resnet50_summary_json():
    result = run_cli('summary', '--depth', '50', '--json')
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary['params'], summary['macs'], summary['non_trainable']) == (25557032, RESNET50_MACS, 53120)
    assert abs(summary['macs'] - 4.09e9) / 4.09e9 < 1e-3
    rows = {row['name']: row for row in summary['rows']}
    assert list(rows) == ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'head']
    assert [rows[n]['output_shape'] for n in rows] == [
        [56, 56, 64], [56, 56, 256], [28, 28, 512], [14, 14, 1024], [7, 7, 2048], [1000]]
    # The stem: 7*7*3*64 weights + BN 2*64; 112*112 output positions of 7*7*3*64 multiply-adds.
    assert (rows['stem']['params'], rows['stem']['macs']) == (9536, 112 * 112 * 7 * 7 * 3 * 64)
    assert (rows['head']['params'], rows['head']['macs']) == (2048 * 1000 + 1000, 2048 * 1000)
    assert sum(r['params'] for r in rows.values()) == summary['params']


def test_v1_stride_placement_costs_fewer_multiply_adds():
    # The stride in the first 1x1 (the paper's v1, 3.8e9 "FLOPs" in its Table 1) shrinks the 3x3's input:
    summary = summarize(50, stride_in='1x1')
    assert (summary['params'], summary['macs']) == (25557032, 3857973248)


def test_cifar_resnet110_summary_table():
    summary = summarize(110, image_size=32, channels=3, num_classes=10)
    assert summary['params'] == 1727962 and summary['macs'] == 252887680
    lines = format_table(summary, 110, 32, 3, 10)
    assert lines[0] == ('ResNet-110 (cifar, v1, standard variant, shortcut A, stride in 3x3, width x1, NHWC), '
                        'input 32x32x3, 10 classes')
    assert lines[2].split() == ['stem', '32x32x16', '464', '442,368']  # 32*32 * 3*3*3*16
    assert lines[-2].split() == ['total', '1,727,962', '252,887,680']


def test_bad_depth_exits_2():
    result = run_cli('summary', '--depth', '21')
    assert result.returncode == 2
    assert error_lines(result.stderr) == ['resnet_graph.summary: error: depth 21 is not supported; valid depths: '
                                          '18, 34, 50, 101, 152 (ImageNet-style) or 6n+2 (20, 32, 44, 56, 110, '
                                          '...) (CIFAR-style)']
