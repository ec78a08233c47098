"""variant='slim_v1' / 'slim_v2': TF-Slim's resnet_v1_50 / resnet_v2_50 graphs; their checkpoints restore by name.

The oracle is a float64 NumPy forward pass written here from the family's
definition (tensorflow/models research/slim/nets/resnet_v1.py, resnet_v2.py,
resnet_utils.py), on a checkpoint written here under the names Slim gives.
"""
import numpy as np
import pytest
import tensorflow as tf

from conftest import error_lines, run_cli
from resnet_graph.nets import variants
from resnet_graph.nets.model import ResNet
from resnet_graph.nets.counts import summarize

v1 = tf.compat.v1

# resnet_v<1|2>_50: units per block, bottleneck (base) depths, block strides (in each block's LAST unit).
UNITS = (3, 4, 6, 3)
BASES = (64, 128, 256, 512)
BLOCK_STRIDES = (2, 2, 2, 1)
EPSILON = 1e-5  # resnet_arg_scope
SIZE = 64  # input side: the smallest that keeps every block's map at least 2x2
BN_NAMES = ('gamma', 'beta', 'moving_mean', 'moving_variance')


def slim_shapes(version, channels=3):
    """{name: shape} of every variable Slim's resnet_v<version>_50 makes (the zoo's 1000 / 1001 classes)."""
    scope = 'resnet_v%d_50/' % version
    shapes = {}

    def batch_norm(name, depth):
        shapes.update({'%s/%s' % (name, v): [depth] for v in BN_NAMES})

    def conv(name, size, depth_in, depth, norm):  # v1: BatchNorm inside the conv; v2: biases unless normalised
        shapes[name + '/weights'] = [size, size, depth_in, depth]
        if norm:
            batch_norm(name + '/BatchNorm', depth)
        else:
            shapes[name + '/biases'] = [depth]

    conv(scope + 'conv1', 7, channels, 64, norm=version == 1)
    depth_in = 64
    for block, (units, base) in enumerate(zip(UNITS, BASES), 1):
        for unit in range(1, units + 1):
            prefix = '%sblock%d/unit_%d/bottleneck_v%d/' % (scope, block, unit, version)
            if version == 2:
                batch_norm(prefix + 'preact', depth_in)
            if depth_in != 4 * base:
                conv(prefix + 'shortcut', 1, depth_in, 4 * base, norm=version == 1)
            conv(prefix + 'conv1', 1, depth_in, base, norm=True)
            conv(prefix + 'conv2', 3, base, base, norm=True)
            conv(prefix + 'conv3', 1, base, 4 * base, norm=version == 1)
            depth_in = 4 * base
    if version == 2:
        batch_norm(scope + 'postnorm', depth_in)
    conv(scope + 'logits', 1, depth_in, 1000 if version == 1 else 1001, norm=False)
    return shapes


def random_values(shapes, seed):
    """Random float32 values for ``shapes``; BN moving statistics far from 0 and 1, so they matter."""
    rng = np.random.RandomState(seed)
    values = {}
    for name, shape in sorted(shapes.items()):
        kind = name.rsplit('/', 1)[1]
        if kind == 'weights':
            value = rng.normal(0, np.sqrt(1.0 / np.prod(shape[:3])), shape)
        elif kind == 'gamma':
            value = rng.uniform(0.5, 1.0, shape)
        elif kind == 'moving_variance':
            value = rng.uniform(0.5, 2.0, shape)
        else:  # beta, moving_mean, biases
            value = rng.normal(0, 0.3, shape)
        values[name] = value.astype(np.float32)
    return values


def write_checkpoint(prefix, values):
    """Saves ``values`` under their names in the bundle format a Saver writes (one SaveV2 op); returns ``prefix``."""
    names = list(values)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
                      tensors=[values[name] for name in names])
    return prefix


# -- the NumPy oracle ---------------------------------------------------------------


def np_conv(x, w, stride=1, rate=1):
    """Slim's conv2d_same (and its SAME stride-1 / 1x1 convolutions): pad (effective size - 1), smaller half
    first, then VALID. x [N, H, W, C], w [k, k, C, F] -> [N, H', W', F], float64 im2col."""
    k = w.shape[0]
    total = (k - 1) * rate
    x = np.pad(x, [(0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)])
    out_h, out_w = (x.shape[1] - total - 1) // stride + 1, (x.shape[2] - total - 1) // stride + 1
    rows, cols = (out_h - 1) * stride + 1, (out_w - 1) * stride + 1
    taps = [x[:, i * rate:i * rate + rows:stride, j * rate:j * rate + cols:stride] for i in range(k) for j in range(k)]
    return np.tensordot(np.stack(taps, axis=3), w.reshape(k * k, w.shape[2], w.shape[3]), axes=([3, 4], [0, 1]))


def np_max_pool_same(x, size=3, stride=2):
    """TensorFlow's SAME max-pool: [N, H, W, C] -> [N, ceil(H/stride), ceil(W/stride), C]."""
    out = -(-x.shape[1] // stride)
    total = max((out - 1) * stride + size - x.shape[1], 0)
    x = np.pad(x, [(0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)],
               constant_values=-np.inf)
    return np.max([x[:, i:i + (out - 1) * stride + 1:stride, j:j + (out - 1) * stride + 1:stride]
                   for i in range(size) for j in range(size)], axis=0)


def relu(x):
    return np.maximum(x, 0)


def np_slim(values, images, version, output_stride=None, stride_first=False, skip_bn=None, atrous=True):
    """Slim's resnet_v<version>_50 (eval mode) in float64: images [N, H, W, 3] -> (logits, last feature map).

    stride_first / skip_bn / atrous=False: deliberate mistakes (a block's stride in its first unit; no
    BatchNorm in the conv ``skip_bn``; output_stride's unstrided units without atrous rates) that the
    comparison must catch.
    """
    scope = 'resnet_v%d_50/' % version
    p = {name[len(scope):]: value.astype(np.float64) for name, value in values.items()}

    def bn(x, name):
        if name == skip_bn:
            return x
        return (x - p[name + '/moving_mean']) / np.sqrt(p[name + '/moving_variance'] + EPSILON) \
            * p[name + '/gamma'] + p[name + '/beta']

    def conv(x, name, stride=1, rate=1, act=True):  # v1: conv-BN(-ReLU)
        y = bn(np_conv(x, p[name + '/weights'], stride, rate), name + '/BatchNorm')
        return relu(y) if act else y

    def conv_bias(x, name, stride=1):  # v2's unnormalised convs
        return np_conv(x, p[name + '/weights'], stride) + p[name + '/biases']

    def unit(x, prefix, depth, stride, rate):
        if version == 1:
            shortcut = conv(x, prefix + 'shortcut', stride, act=False) if x.shape[-1] != depth else \
                x[:, ::stride, ::stride]
            y = conv(conv(conv(x, prefix + 'conv1'), prefix + 'conv2', stride, rate), prefix + 'conv3', act=False)
            return relu(shortcut + y)
        preact = relu(bn(x, prefix + 'preact'))
        shortcut = conv_bias(preact, prefix + 'shortcut', stride) if x.shape[-1] != depth else \
            x[:, ::stride, ::stride]
        return shortcut + conv_bias(conv(conv(preact, prefix + 'conv1'), prefix + 'conv2', stride, rate),
                                    prefix + 'conv3')

    x = images.astype(np.float64)
    x = conv(x, 'conv1', 2) if version == 1 else conv_bias(x, 'conv1', 2)
    x = np_max_pool_same(x)
    current, rate = 4, 1  # stride of conv1 + pool1; the atrous rate (resnet_utils.stack_blocks_dense)
    for block, (units, base, block_stride) in enumerate(zip(UNITS, BASES, BLOCK_STRIDES), 1):
        for index in range(1, units + 1):
            stride = block_stride if index == (1 if stride_first else units) else 1
            prefix = 'block%d/unit_%d/bottleneck_v%d/' % (block, index, version)
            if output_stride is not None and current == output_stride:
                x = unit(x, prefix, 4 * base, 1, rate if atrous else 1)
                rate *= stride
            else:
                x = unit(x, prefix, 4 * base, stride, 1)
                current *= stride
    if version == 2:
        x = relu(bn(x, 'postnorm'))
    pooled = x.mean(axis=(1, 2))
    logits = pooled @ p['logits/weights'].reshape(pooled.shape[1], -1) + p['logits/biases']
    return logits, x


def close(ours, reference, tolerance=1e-4):
    """Largest difference relative to the largest |logit| is below ``tolerance``."""
    return np.max(np.abs(ours - reference)) <= tolerance * np.max(np.abs(reference))


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope='module', params=[1, 2], ids=['slim_v1', 'slim_v2'])
def slim_checkpoint(request, tmp_path_factory):
    """(version, values, prefix) of a random resnet_v<version>_50 checkpoint under Slim's names."""
    version = request.param
    values = random_values(slim_shapes(version), seed=version)
    prefix = write_checkpoint(str(tmp_path_factory.mktemp('slim%d' % version) / 'model.ckpt'), values)
    return version, values, prefix


def run_restored(version, prefix, images, **kwargs):
    """(model, (logits, endpoints)) of our slim_v<version> graph restored from ``prefix`` by a plain Saver."""
    with tf.Graph().as_default():
        model = ResNet(50, 1000 if version == 1 else 1001, SIZE, SIZE, 3, variant='slim_v%d' % version,
                       training=False, **kwargs)
        with v1.Session() as sess:
            v1.train.Saver().restore(sess, prefix)
            return model, sess.run((model.logits, model.endpoints), {model.input_x: images})


def images(batch, seed=0):
    return np.random.RandomState(seed).normal(0, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)


# -- tests -------------------------------------------------------------------------


def test_checkpoint_restores_by_name_and_matches_numpy(slim_checkpoint):
    version, values, prefix = slim_checkpoint
    batch = images(2)
    model, (logits, endpoints) = run_restored(version, prefix, batch)
    # Exactly Slim's variables, names and shapes (written above from resnet_v1.py / resnet_v2.py).
    ours = {model.local_name(v): v.shape.as_list() for v in model.variables}
    assert len(ours) == len(model.variables) and ours == slim_shapes(version)
    # weight_decay covers Slim's conv weights (logits too), never BN or biases.
    assert sorted(model.local_name(v) for v in model.decayed_kernels) == sorted(
        n for n in slim_shapes(version) if n.endswith('/weights'))
    reference, _ = np_slim(values, batch, version)
    assert logits.shape == (2, 1000 if version == 1 else 1001)
    assert close(logits, reference), np.max(np.abs(logits - reference)) / np.max(np.abs(reference))
    assert {k: v.shape[1:] for k, v in endpoints.items()} == {
        'stem': (16, 16, 64), 'stage1': (8, 8, 256), 'stage2': (4, 4, 512), 'stage3': (2, 2, 1024),
        'stage4': (2, 2, 2048)}
    # The mistakes the oracle can make are visible: a stride in the first unit, one BatchNorm missing.
    unit = 'block2/unit_2/bottleneck_v%d/conv2/BatchNorm' % version
    for mistake in (dict(stride_first=True), dict(skip_bn=unit)):
        assert not close(logits, np_slim(values, batch, version, **mistake)[0]), mistake


def test_weights_argument_restores_a_slim_checkpoint(slim_checkpoint):
    version, values, prefix = slim_checkpoint
    if version == 2:
        pytest.skip('one family is enough: the mechanism is the same')
    batch = images(1, seed=1)
    with tf.Graph().as_default():
        model = ResNet(50, 1000, SIZE, SIZE, 3, variant='slim_v1', training=False, weights=prefix)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            logits = sess.run(model.logits, {model.input_x: batch})
    assert len(model.weights_report['restored']) == len(values) and not model.weights_report['fresh']
    assert close(logits, np_slim(values, batch, version)[0])
    # A new head: the error names Slim's head scope, and excluding it leaves exactly the logits fresh.
    with tf.Graph().as_default(), pytest.raises(ValueError, match=r'weights_exclude=\["logits/"\]'):
        ResNet(50, 10, SIZE, SIZE, 3, variant='slim_v1', weights=prefix)
    with tf.Graph().as_default():
        model = ResNet(50, 10, SIZE, SIZE, 3, variant='slim_v1', weights=prefix, weights_exclude=('logits/',))
    assert model.weights_report['fresh'] == ['resnet_v1_50/logits/weights', 'resnet_v1_50/logits/biases']


@pytest.mark.slow
def test_output_stride_runs_atrous_like_slim(slim_checkpoint):
    version, values, prefix = slim_checkpoint
    output_stride = 8 if version == 1 else 16
    batch = images(1, seed=2)
    _, (logits, endpoints) = run_restored(version, prefix, batch, output_stride=output_stride)
    reference, features = np_slim(values, batch, version, output_stride=output_stride)
    side = SIZE // output_stride
    assert features.shape[1:3] == (side, side)
    assert endpoints['stage4'].shape == (1, side, side, 2048)
    assert close(logits, reference)
    assert not close(logits, np_slim(values, batch, version, output_stride=output_stride, atrous=False)[0])


def test_backbone_options_on_slim_variants(tf_graph):
    x = tf.zeros([2, SIZE, SIZE, 3])
    model = ResNet(50, input_tensor=x, include_top=False, pooling='avg', variant='slim_v2', output_stride=16,
                   scope='tower')
    assert model.features.shape.as_list() == [2, 2048]
    assert model.endpoints['stage4'].shape.as_list() == [2, SIZE // 16, SIZE // 16, 2048]
    assert model.variables[0].op.name == 'tower/resnet_v2_50/conv1/weights'
    assert model.local_name(model.variables[0]) == 'resnet_v2_50/conv1/weights'
    assert set(map(model.local_name, model.variables)) == {n for n in slim_shapes(2) if '/logits/' not in n}


def test_bad_options_name_what_is_wrong():
    with pytest.raises(ValueError, match='output_stride=16 needs variant slim_v1 or slim_v2'):
        variants.resolve(50, output_stride=16)
    with pytest.raises(ValueError, match='output_stride=12 is not one of'):
        variants.resolve(50, variant='slim_v1', output_stride=12)
    with pytest.raises(ValueError, match='variant=slim_v2 has depths 50, 101, 152'):
        variants.resolve(18, variant='slim_v2')


def slim_param_count(version, classes):
    """Trainable parameters of resnet_v<version>_50 from the architecture table (BN: gamma + beta)."""
    v2 = version == 2
    total = 7 * 7 * 3 * 64 + (64 if v2 else 2 * 64)
    depth_in = 64
    for units, base in zip(UNITS, BASES):
        for _ in range(units):
            out = 4 * base
            total += depth_in * base + 9 * base * base + base * out  # conv1, conv2, conv3 weights
            total += 2 * base + 2 * base + (out if v2 else 2 * out)  # their BN (v2's conv3: biases)
            if v2:
                total += 2 * depth_in  # preact
            if depth_in != out:
                total += depth_in * out + (out if v2 else 2 * out)
            depth_in = out
    return total + (2 * depth_in if v2 else 0) + depth_in * classes + classes


def test_parameter_counts_of_resnet50():
    assert slim_param_count(1, 1000) == 25557032  # torchvision's ResNet-50: the same layer shapes
    assert summarize(50, variant='slim_v2', num_classes=1001)['params'] == slim_param_count(2, 1001)
    result = run_cli('summary', '--variant', 'slim_v1', '--depth', '50')
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2].split()[:2] == ['total', '25,557,032']


def test_train_refuses_a_depth_slim_lacks_before_tensorflow(tmp_path):
    result = run_cli('train', '--model_dir', tmp_path / 'run', '--variant', 'slim_v1', '--depth', '18')
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith('resnet_graph.train: error: ') and \
        'variant=slim_v1 has depths 50, 101, 152 (resnet_v1_50/101/152), got 18' in lines[0], lines
    assert 'Traceback' not in result.stderr and not (tmp_path / 'run').exists()
