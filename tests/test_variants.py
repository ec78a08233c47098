"""Architecture variants: CIFAR-style ResNets, shortcut A/B, v2, stride placement, width, plain, NCHW."""
import json

import numpy as np
import pytest
import tensorflow as tf

import config
from conftest import error_lines, run_cli, seeded_logits
from resnet_graph.nets import variants
from resnet_graph.serving.inference import RestoredRun
from resnet_graph.nets.model import ResNet, check_data_format
from resnet_graph.training.trainer import Trainer
from test_trainer import tiny_config

v1 = tf.compat.v1
HAS_GPU = bool(tf.config.list_physical_devices('GPU'))


def cifar_params(depth, shortcut, classes=10):
    """Trainable parameters of the CIFAR-style ResNet of He et al. 2015, section 4.2, 3 input channels.

    n = (depth - 2) / 6 basic blocks per stage; a conv k x k from a to b channels has k*k*a*b weights
    (no bias); each BN has gamma and beta (2 per channel; its moving statistics are not trained).
    """
    n = (depth - 2) // 6
    conv_bn = lambda a, b: 9 * a * b + 2 * b  # noqa: E731
    stem = conv_bn(3, 16)
    stage1 = 2 * n * conv_bn(16, 16)
    stage2 = conv_bn(16, 32) + (2 * n - 1) * conv_bn(32, 32)
    stage3 = conv_bn(32, 64) + (2 * n - 1) * conv_bn(64, 64)
    head = 64 * classes + classes
    # Option A's shortcuts are parameter-free; B projects twice (16->32, 32->64: 1x1 conv + BN).
    projections = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64) if shortcut == 'B' else 0
    return stem + stage1 + stage2 + stage3 + head + projections


def params(*args, **kwargs):
    with tf.Graph().as_default():
        return ResNet(*args, **kwargs).num_params()


# The paper's table (Table 6): ResNet-20 0.27M, 56 0.85M, 110 1.7M, option A.
# (ResNet-110 is the same formula: 1,727,962 for A, built in the summary test.)
@pytest.mark.parametrize('depth,shortcut,expected', [(20, 'A', 269722), (56, 'A', 853018), (20, 'B', 272474)])
def test_cifar_parameter_counts(depth, shortcut, expected):
    assert cifar_params(depth, shortcut) == expected
    assert params(depth, 10, 32, 32, 3, shortcut=shortcut) == expected
    assert cifar_params(110, 'A') == 1727962


def test_cifar_shapes_and_option_a_shortcut_is_subsampled_zero_padding(tf_graph):
    model = ResNet(20, 10, 16, 16, 3, training=False)
    assert model.spec.architecture == 'cifar' and model.spec.shortcut == 'A'
    assert [model.endpoints[k].shape.as_list() for k in ('stem', 'stage1', 'stage2', 'stage3')] == [
        [None, 16, 16, 16], [None, 16, 16, 16], [None, 8, 8, 32], [None, 4, 4, 64]]
    assert 'stage4' not in model.endpoints
    assert not [v for v in model.variables if 'shortcut' in v.op.name or 'max_pool' in v.op.name]
    shortcut = tf_graph.get_tensor_by_name('stage2/block0/shortcut/Pad:0')
    batch = np.random.RandomState(0).rand(2, 16, 16, 3).astype(np.float32)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        stage1, got, logits = sess.run([model.endpoints['stage1'], shortcut, model.logits], {model.input_x: batch})
    np.testing.assert_array_equal(got[..., :16], stage1[:, ::2, ::2, :])
    assert not got[..., 16:].any() and logits.shape == (2, 10)


def test_v2_parameter_count_and_layout(tf_graph):
    # v1's 25,557,032 - stem BN (2*64) + final BN (2*2048) - the 4 projection BNs (2*(256+512+1024+2048))
    # + each stage's first block normalising its input (c_in) instead of its output (4w):
    # 2*((64-256) + (256-512) + (512-1024) + (1024-2048)) = -3968.
    assert 25557032 - 128 + 4096 - 7680 - 3968 == 25549352
    model = ResNet(50, 1000, 224, 224, 3, resnet_version=2)
    assert model.num_params() == 25549352
    names = {model.local_name(v) for v in model.variables}
    assert 'post_norm/bn/gamma' in names and 'stem/bn/gamma' not in names
    assert 'stage2/block0/shortcut/conv/kernel' in names and 'stage2/block0/shortcut/bn/gamma' not in names
    # The same shapes as v1 (the ResNet-50 table of the paper).
    assert {k: t.shape.as_list() for k, t in model.endpoints.items()} == {
        'stem': [None, 56, 56, 64], 'stage1': [None, 56, 56, 256], 'stage2': [None, 28, 28, 512],
        'stage3': [None, 14, 14, 1024], 'stage4': [None, 7, 7, 2048]}


def test_v2_trains_and_its_block_sum_has_no_relu(tf_graph):
    model = ResNet(8, 4, 8, 8, 1, resnet_version=2)
    residual = tf_graph.get_operation_by_name('stage2/block0/residual')
    assert 'Relu' not in [c.type for c in residual.outputs[0].consumers()]
    step = v1.train.AdamOptimizer(1e-2).minimize(model.loss)
    rng = np.random.RandomState(1)
    feed = {model.input_x: rng.rand(8, 8, 8, 1), model.input_y: np.arange(8) % 4, model.is_training: True}
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        first = sess.run(model.cross_entropy, feed)
        for _ in range(10):
            sess.run([step] + model.update_ops, feed)
        assert sess.run(model.cross_entropy, feed) < first / 2


def _bn_output_shape(graph, scope):
    ops = [op for op in graph.get_operations() if op.name.startswith(scope + '/') and op.type == 'FusedBatchNormV3']
    return ops[0].outputs[0].shape.as_list()


def test_stride_in_1x1_places_the_bottleneck_stride_in_conv1(tf_graph):
    # (The default, v1.5, strides in the 3x3: its ResNet-50 has torchvision's 4.09e9 multiply-adds, test_summary.)
    model = ResNet(50, 10, 32, 32, 3, training=False, stride_in='1x1')
    assert model.num_params() == 25557032 - 990 * 2049  # v1.5's variables (25,557,032 with 1000 classes)
    assert _bn_output_shape(tf_graph, 'stage2/block0/bn1') == [None, 4, 4, 128]  # v1.5: 8x8
    assert _bn_output_shape(tf_graph, 'stage2/block0/bn2') == [None, 4, 4, 128]


def test_width_multiplier():
    # torchvision's wide_resnet50_2 (68,883,240 parameters): the bottleneck's inner width doubled.
    assert params(50, 1000, 224, 224, 3, width_multiplier=2) == 68883240
    # Basic blocks double both convs (WRN): every CIFAR conv but the stem's 3->16 has 4x the weights.
    with tf.Graph().as_default():
        wide = ResNet(20, 10, 16, 16, 3, width_multiplier=2)
        assert wide.endpoints['stage3'].shape.as_list() == [None, 4, 4, 128]
        assert wide.num_params() == 1068890


def _additions(graph):
    """Names of the addition ops of the network itself (initialisers left out)."""
    return [op.name for op in graph.get_operations()
            if op.type in ('Add', 'AddV2', 'AddN') and op.name.startswith(('stem/', 'stage', 'head/'))
            and '/Initializer/' not in op.name]


def test_no_residual_removes_every_addition(tf_graph):
    with tf.Graph().as_default() as residual_graph:
        ResNet(18, 10, 16, 16, 1, training=False)
    sums = _additions(residual_graph)
    assert len(sums) == 8 and all(name.endswith('/residual') for name in sums)
    plain = ResNet(18, 10, 16, 16, 1, training=False, no_residual=True)
    assert _additions(tf_graph) == []
    assert not [v for v in plain.variables if '/shortcut/' in v.op.name]
    # ResNet-18 minus its three projections (1x1 conv + BN): 64*128+256, 128*256+512, 256*512+1024.
    assert params(18, 1000, 224, 224, 3, no_residual=True) == 11689512 - (8448 + 33280 + 132096) == 11515688


def test_nchw_graph_has_the_same_variables(tf_graph):
    model = ResNet(18, 10, 16, 16, 3, data_format='NCHW')
    assert model.num_params() == params(18, 10, 16, 16, 3)
    assert model.endpoints['stage4'].shape.as_list() == [None, 512, 1, 1]
    assert model.logits.shape.as_list() == [None, 10]


@pytest.mark.skipif(not HAS_GPU, reason='NCHW convolutions run on a GPU only')
def test_nchw_logits_equal_nhwc_on_gpu():
    batch = np.random.RandomState(2).rand(4, 16, 16, 3).astype(np.float32)
    outputs = [seeded_logits(batch, 18, 10, 16, 16, 3, data_format=f) for f in ('NHWC', 'NCHW')]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(HAS_GPU, reason='checks the error on a machine without a GPU')
def test_nchw_without_gpu_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match='NCHW needs a GPU'):
        check_data_format('NCHW')
    result = run_cli('train', '--depth', '18', '--data_format', 'NCHW', '--model_dir', tmp_path / 'run')
    assert result.returncode == 2
    assert error_lines(result.stderr) == ['resnet_graph.train: error: --data_format=NCHW needs a GPU and this '
                                          'machine has none (TensorFlow runs NCHW convolutions on GPUs only); '
                                          'use NHWC']
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('args,message', [
    (['--depth', '21'], '--depth 21 is not supported; valid depths: 18, 34, 50, 101, 152 (ImageNet-style) or '
                        '6n+2 (20, 32, 44, 56, 110, ...) (CIFAR-style)'),
    (['--depth', '21', '--architecture', 'cifar'], '--depth 21 is not a CIFAR-style ResNet depth; valid: 6n+2 '
                                                   '(20, 32, 44, 56, 110, ...), n >= 1 basic blocks per stage'),
    (['--depth', '20', '--architecture', 'imagenet'], '--depth 20 is not an ImageNet-style ResNet'),
    (['--variant', 'legacy', '--resnet_version', '2'], 'resnet_version=2 cannot be combined with variant=legacy'),
    (['--resnet_version', '3'], 'resnet_version=3 is not one of 1, 2'),
    (['--width_multiplier', '0'], 'width_multiplier must be positive'),
    (['--depth', '20', '--width_multiplier', '0.5'], 'shortcut=A pads channels with zeros and cannot drop any'),
])
def test_bad_variants_exit_2_before_tensorflow(args, message, tmp_path):
    result = run_cli('train', '--model_dir', tmp_path / 'run', *args)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith('resnet_graph.train: error: ' + message), lines
    assert 'Traceback' not in result.stderr


def test_old_configs_build_the_standard_network_and_clash_is_reported():
    # A config.json written before the variants (and --conv, --dtype) existed: their defaults fill in.
    old = config.RunConfig.from_json(dict(depth=18, num_classes=10, image_size=16, channels=1, weight_decay=0.0,
                                          bn_momentum=0.9))
    assert variants.from_config(old) == variants.DEFAULTS
    with tf.Graph().as_default():
        assert ResNet.from_config(old).num_params() == params(18, 10, 16, 16, 1)
    from resnet_graph.training.run_dir import incompatible
    assert incompatible(old, dict(resnet_version=2)) == ['resnet_version: saved 1, asked 2']


@pytest.mark.slow  # a whole training run
def test_cifar_run_trains_and_evaluates_from_its_config(tmp_path):
    cfg = tiny_config(tmp_path, depth=8, image_size=8, max_steps=2, resnet_version=2, width_multiplier=0.5,
                      shortcut='B')
    result = Trainer(cfg, log=lambda line: None).train()
    assert result['test']['images'] == 269
    saved = json.loads((tmp_path / 'config.json').read_text())
    assert (saved['architecture'], saved['resnet_version'], saved['width_multiplier']) == ('auto', 2, 0.5)
    restored = RestoredRun(str(tmp_path))
    assert restored.model.spec.architecture == 'cifar' and restored.model.spec.inner_widths == (8, 16, 32)
    assert restored.evaluate('test')['images'] == 269
    restored.close()
