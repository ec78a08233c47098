"""ResNet as a backbone inside a caller's TF1 graph: input tensors, features, sharing, weights=, collections."""
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from resnet_graph.nets.model import ResNet

v1 = tf.compat.v1


def _batch(size=32, channels=3, n=2, seed=0):
    return np.random.RandomState(seed).rand(n, size, size, channels).astype(np.float32)


def test_input_tensor_and_placeholder_give_identical_outputs(tf_graph):
    batch = _batch()
    placeholder_net = ResNet(18, 10, 32, 32, 3, scope='net')
    tensor_net = ResNet(18, 10, input_tensor=tf.constant(batch), scope='net', reuse=True)
    assert tensor_net.input_x.op.type == 'Const' and placeholder_net.input_x.op.type == 'Placeholder'
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        a = sess.run(placeholder_net.logits, {placeholder_net.input_x: batch})
        b = sess.run(tensor_net.logits)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize('depth,size,final', [(18, 32, 512), (50, 64, 2048), (18, 45, 512)])
def test_include_top_false_exposes_every_stage(depth, size, final, tf_graph):
    net = ResNet(depth, input_shape=(size, size, 3), include_top=False)
    side = -(-size // 4)
    expected = {'stem': [None, side, side, 64]}
    widths = (64, 128, 256, 512) if depth < 50 else (256, 512, 1024, 2048)
    for stage, width in enumerate(widths):
        expected['stage%d' % (stage + 1)] = [None, side, side, width]
        side = -(-side // 2)
    assert {k: t.shape.as_list() for k, t in net.endpoints.items()} == expected
    assert net.features is net.endpoints['stage4']
    assert not hasattr(net, 'logits') and not any('head' in v.op.name for v in net.variables)
    assert tf_graph.get_tensor_by_name('stage2/output:0') is net.endpoints['stage2']
    for pooling in ('avg', 'max'):
        pooled = ResNet(depth, input_shape=(size, size, 3), include_top=False, pooling=pooling, reuse=True)
        assert pooled.features.shape.as_list() == [None, final]


def test_unknown_spatial_size_builds_and_runs(tf_graph):
    net = ResNet(18, 4, input_shape=(None, None, 1))
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        for size in (17, 40):
            assert sess.run(net.logits, {net.input_x: _batch(size, 1)}).shape == (2, 4)


def test_two_towers_share_one_set_of_variables_and_update_ops_appear_once_per_tower(tf_graph):
    batch = _batch(seed=1)
    train_tower = ResNet(18, 10, 32, 32, 3, training=True, weight_decay=1e-4)
    count = len(v1.global_variables())
    eval_tower = ResNet(18, 10, 32, 32, 3, training=False, reuse=True, weight_decay=1e-4)
    second_train = ResNet(18, 10, 32, 32, 3, training=True, reuse=True, weight_decay=1e-4)
    assert len(v1.global_variables()) == count
    assert [v.name for v in eval_tower.trainable_variables] == [v.name for v in train_tower.trainable_variables]
    bn_layers = 20  # 17 convs + 3 projections, each followed by batch norm
    assert len(train_tower.update_ops) == len(second_train.update_ops) == 2 * bn_layers
    assert eval_tower.update_ops == []
    assert set(v1.get_collection(v1.GraphKeys.UPDATE_OPS)) == set(train_tower.update_ops + second_train.update_ops)
    assert len(v1.get_collection(v1.GraphKeys.UPDATE_OPS)) == 4 * bn_layers
    assert v1.get_collection(v1.GraphKeys.REGULARIZATION_LOSSES) == [train_tower.regularization_loss]
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        a, b, ra, rb = sess.run([train_tower.logits, second_train.logits, train_tower.regularization_loss,
                                 eval_tower.regularization_loss],
                                {train_tower.input_x: batch, second_train.input_x: batch})
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ra == pytest.approx(rb, rel=1e-6) and ra > 0


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A 10-class ResNet-18 checkpoint (random weights) and its variable values."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'model.ckpt')
    with tf.Graph().as_default():
        v1.set_random_seed(7)
        net = ResNet(18, 10, 32, 32, 3)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            values = dict(zip([v.op.name for v in net.variables], sess.run(net.variables)))
            v1.train.Saver().save(sess, path)
    return path, values


def test_weights_load_in_callers_sessions_and_the_excluded_head_stays_fresh(checkpoint):
    path, values = checkpoint
    for make_session in (lambda: v1.Session(), lambda: v1.train.MonitoredTrainingSession()):
        with tf.Graph().as_default():
            v1.train.get_or_create_global_step()
            net = ResNet(18, 5, 32, 32, 3, scope='backbone', weights=path, weights_exclude=['^head/'])
            report = net.weights_report
            assert report['fresh'] == ['head/dense/kernel', 'head/dense/bias']
            assert len(report['restored']) == len(values) - 2
            init = v1.global_variables_initializer()
            session = make_session()
            with session as sess:
                if isinstance(sess, v1.Session):
                    sess.run(init)
                got = dict(zip([net.local_name(v) for v in net.variables], sess.run(net.variables)))
        for name in report['restored']:
            np.testing.assert_array_equal(got[name], values[name])
        assert got['head/dense/kernel'].shape == (512, 5)


def test_weights_accepts_a_run_directory(checkpoint, tmp_path):
    path, values = checkpoint
    run = tmp_path / 'run'
    (run / 'best').mkdir(parents=True)
    with tf.Graph().as_default():
        net = ResNet(18, 10, 32, 32, 3, weights=path)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver().save(sess, str(run / 'best' / 'model.ckpt'), global_step=3)
    with tf.Graph().as_default():
        net = ResNet(18, 10, 32, 32, 3, weights=str(run))
        assert net.weights_report['checkpoint'].endswith('model.ckpt-3') and not net.weights_report['fresh']
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            np.testing.assert_array_equal(sess.run(net.variables[0]), values['stem/conv/kernel'])


@pytest.mark.parametrize('kwargs,message', [
    (dict(input_tensor=np.zeros([2, 32, 3], np.float32)), 'input_tensor must be 4-D'),
    (dict(include_top=False, classes=5), 'classes=5 needs include_top=True'),
    (dict(pooling='median'), 'pooling='),
    (dict(input_shape=(32, 32)), 'input_shape='),
])
def test_bad_arguments_name_the_argument(kwargs, message, tf_graph):
    with pytest.raises(ValueError, match=re.escape(message)):
        ResNet(18, **kwargs)


def test_a_checkpoint_head_of_another_size_is_a_clear_error(checkpoint, tf_graph):
    path, _ = checkpoint
    with pytest.raises(ValueError, match=r'head/dense/kernel with shape \[512, 10\].*classes=7.*weights_exclude'):
        ResNet(18, input_shape=(32, 32, 3), classes=7, weights=path)


def _api_examples():
    with open(ROOT + '/docs/api.md') as f:
        return re.findall(r'```python\n(.*?)```', f.read(), re.S)


@pytest.mark.slow
@pytest.mark.parametrize('index', range(3))
def test_the_api_page_examples_run(index, capsys):
    examples = _api_examples()
    assert len(examples) == 3
    exec(compile(examples[index], 'docs/api.md example %d' % (index + 1), 'exec'), {})
    assert capsys.readouterr().out.strip()
