"""variant='official_v1' / 'official_v2': official r1's checkpoints restore by name and give its logits."""
import numpy as np
import pytest
import tensorflow as tf

import official_reference as ref
from resnet_graph.nets.model import ResNet

v1 = tf.compat.v1


@pytest.fixture(scope='module', params=[1, 2], ids=['official_v1', 'official_v2'])
def checkpoint(request, tmp_path_factory):
    """(version, weights, checkpoint prefix, our logits on ``images()``) of a random depth-50 official r1
    checkpoint."""
    version = request.param
    weights = ref.random_weights(ref.variable_shapes(version), seed=version)
    prefix = ref.write_checkpoint(weights, tmp_path_factory.mktemp('official') / 'model.ckpt')
    return version, weights, prefix, ours(version, prefix, images())


def ours(version, prefix, images):
    """Logits [N, 1001] of ResNet(50, variant='official_vN') restored from ``prefix`` by a plain Saver."""
    with tf.Graph().as_default():
        model = ResNet(50, 1001, 64, 64, 3, variant='official_v%d' % version, training=False)
        with v1.Session() as sess:
            v1.train.Saver(v1.global_variables()).restore(sess, prefix)
            return sess.run(model.logits, {model.input_x: images})


def close(got, expected):
    return np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def images(count=2):
    return np.random.RandomState(5).uniform(-120, 130, (count, 64, 64, 3)).astype(np.float32)


def test_logits_match_the_numpy_reference(checkpoint):
    version, weights, _, got = checkpoint
    batch = images()
    expected = ref.Official(version, weights=weights)(batch)
    assert np.abs(expected).max() > 1 and np.std(expected) > 0.1  # not trivially small or constant
    assert close(got, expected), np.abs(got - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize('mutate', ['stride', 'drop_bn'])
def test_the_reference_is_sensitive(checkpoint, mutate):
    version, weights, _, got = checkpoint
    batch = images()
    assert not close(got, ref.Official(version, weights=weights, mutate=mutate)(batch))


def test_variable_names_in_creation_order(checkpoint):
    version = checkpoint[0]
    with tf.Graph().as_default():
        model = ResNet(50, 1001, 64, 64, 3, variant='official_v%d' % version)
        names = [(v.op.name, tuple(v.shape.as_list())) for v in model.variables]
    expected = ref.variable_shapes(version)
    assert names == expected
    head = [n for n, _ in expected[:12]]
    if version == 1:  # stem conv + BN, then block 1's projection shortcut before its first conv
        assert head[:2] == ['resnet_model/conv2d/kernel', 'resnet_model/batch_normalization/gamma']
        assert head[5:7] == ['resnet_model/conv2d_1/kernel', 'resnet_model/batch_normalization_1/gamma']
        assert dict(expected)['resnet_model/conv2d_1/kernel'] == (1, 1, 64, 256)
        assert names[-1] == ('resnet_model/dense/bias', (1001,)) and len(expected) == 53 + 53 * 4 + 2
    else:  # no stem BN; the pre-activation BN, then the projection of it
        assert head[:3] == ['resnet_model/conv2d/kernel', 'resnet_model/batch_normalization/gamma',
                            'resnet_model/batch_normalization/beta']
        assert dict(expected)['resnet_model/conv2d_1/kernel'] == (1, 1, 64, 256)
        assert dict(expected)['resnet_model/batch_normalization_48/gamma'] == (2048,)  # the final BN
        assert 'resnet_model/batch_normalization_49/gamma' not in dict(expected)


def architecture_count(version, classes=1001):
    """Trainable parameters of official r1 ResNet-50 from the architecture table."""
    total = 7 * 7 * 3 * 64 + (2 * 64 if version == 1 else 0)
    channels = 64
    for stage, blocks in enumerate((3, 4, 6, 3)):
        inner = 64 * 2 ** stage
        out = 4 * inner
        for index in range(blocks):
            convs = channels * inner + 9 * inner * inner + inner * out
            bns = 2 * (inner + inner + (out if version == 1 else channels))  # v2 normalises the block's input
            projection = channels * out + (2 * out if version == 1 else 0) if index == 0 else 0
            total += convs + bns + projection
            channels = out
    return total + (2 * 2048 if version == 2 else 0) + 2048 * classes + classes


def test_trainable_parameter_counts():
    for version in (1, 2):
        with tf.Graph().as_default():
            model = ResNet(50, 1001, 64, 64, 3, variant='official_v%d' % version)
            assert model.num_params() == architecture_count(version)
            assert model.bn_momentum == 0.997 and model.spec.bn_epsilon == 1e-5
    # v1.5 has torchvision resnet50's layer shapes (25,557,032 parameters) plus one class.
    assert architecture_count(1) == 25557032 + 2049
    # v2: no stem BN, each block's BN on its input instead of its output, no projection BNs, a final BN.
    input_minus_output = sum(2 * (c - o) * n for c, o, n in (
        (64, 256, 1), (256, 256, 2), (256, 512, 1), (512, 512, 3), (512, 1024, 1), (1024, 1024, 5),
        (1024, 2048, 1), (2048, 2048, 2)))
    assert architecture_count(2) == (25557032 + 2049 - 128 + input_minus_output - 2 * (256 + 512 + 1024 + 2048)
                                     + 2 * 2048)


def test_backbone_options():
    with tf.Graph().as_default():
        model = ResNet(50, 1001, 64, 64, 3, variant='official_v2', include_top=False, pooling='avg')
        assert model.features.shape.as_list() == [None, 2048]
        assert [model.endpoints['stage%d' % i].shape.as_list()[1] for i in (1, 2, 3, 4)] == [16, 8, 4, 2]
        assert all(v.op.name.startswith('resnet_model/') for v in model.variables)


def test_resnet_version_conflict_is_named():
    with pytest.raises(ValueError, match='variant=official_v1: the variant is version 1'):
        ResNet(50, variant='official_v1', resnet_version=2)


def test_summary_counts_each_row():
    from resnet_graph.nets.counts import summarize
    for version in (1, 2):
        summary = summarize(50, 64, 3, 1001, variant='official_v%d' % version)
        rows = {row['name']: row['params'] for row in summary['rows']}
        assert summary['params'] == architecture_count(version)
        assert rows['head'] == 2048 * 1001 + 1001 and rows['stem'] == 7 * 7 * 3 * 64 + (128 if version == 1 else 0)
        assert rows.get('post_norm', 0) == (2 * 2048 if version == 2 else 0)
