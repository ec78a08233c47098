"""Batch norm folded into the convolutions of the inference graph (ResNet(fold_bn=...), layers.conv2d_bn_folded).

The same weights, with batch-norm statistics far from their initial values,
give the same logits with and without folding; the variables are the same,
so checkpoints, evaluation and the exports agree either way.
"""
import zlib

import numpy as np
import pytest
import tensorflow as tf

pytestmark = pytest.mark.slow  # ResNet-50 inference graphs

v1 = tf.compat.v1


def _values(name, shape):
    """Deterministic values for the variable ``name``: BN statistics far from (0, 1), He-scaled kernels."""
    rng = np.random.RandomState(zlib.crc32(name.encode()))
    if name.endswith(('gamma', 'moving_variance')):
        return rng.uniform(0.5, 1.5, shape)
    if name.endswith(('beta', 'moving_mean', 'bias')):
        return rng.normal(0.0, 0.5, shape)
    fan_in = np.prod(shape[:-1])
    return rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)


def _build(fold, conv='shape_aware', depth=18, size=16, **options):
    """Inference-graph logits [4, 10] on fixed images, with every variable set by ``_values``.

    Returns (logits, [(name, shape, trainable)] of the network's variables, graph op types).
    """
    from resnet_graph.nets.model import ResNet
    with tf.Graph().as_default() as graph:
        model = ResNet(depth, 10, size, size, 3, training=False, fold_bn=fold, conv=conv,
                       **options)
        images = np.random.RandomState(0).rand(4, size, size, 3)
        with v1.Session() as sess:
            variables = v1.global_variables()  # one run feeding every initial value
            sess.run([v.initializer for v in variables],
                     {v.initializer.inputs[1]: _values(v.op.name, v.shape.as_list()) for v in variables})
            logits = sess.run(model.logits, {model.input_x: images})
        variables = [(model.local_name(v), v.shape.as_list(), v.trainable) for v in model.variables]
        assert [v.op.name for v in v1.global_variables()] == [name for name, _, _ in variables]
        return logits, variables, {op.type for op in graph.get_operations()}


@pytest.mark.parametrize('depth', [18, 50])
@pytest.mark.parametrize('conv', ['shape_aware', 'plain'])
def test_folding_keeps_logits_and_variables(depth, conv):
    plain, plain_variables, plain_ops = _build(False, conv, depth)
    folded, folded_variables, folded_ops = _build(True, conv, depth)
    assert np.abs(plain).max() > 1.0  # the statistics matter: logits far from zero
    np.testing.assert_allclose(folded, plain, rtol=0, atol=1e-4)
    assert folded_variables == plain_variables
    assert 'FusedBatchNormV3' in plain_ops and not any(t.startswith('FusedBatchNorm') for t in folded_ops)


@pytest.mark.parametrize('options', [dict(variant='legacy'), dict(resnet_version=2)],
                         ids=['legacy_conv_bias', 'v2_preactivation'])
def test_folding_keeps_logits_of_the_variants(options):
    # legacy: its convolutions have a bias, folded too; v2: bn<i+1> after conv<i> folds, bn1 cannot.
    plain, plain_variables, _ = _build(False, **options)
    folded, folded_variables, folded_ops = _build(True, **options)
    np.testing.assert_allclose(folded, plain, rtol=0, atol=1e-4)
    assert folded_variables == plain_variables
    assert ('FusedBatchNormV3' in folded_ops) == ('resnet_version' in options)


def test_graphs_that_can_train_never_fold(tf_graph):
    from conftest import seeded_logits
    from resnet_graph.nets.model import ResNet
    # The is_training placeholder: the same graph (so the same seeded weights) and batch statistics either way.
    batch = np.random.RandomState(1).rand(4, 16, 16, 3)
    np.testing.assert_array_equal(seeded_logits(batch, 18, 10, 16, 16, 3, fold_bn=True),
                                  seeded_logits(batch, 18, 10, 16, 16, 3, fold_bn=False))
    ResNet(18, 10, 16, 16, 3, training=True, fold_bn=True)
    assert [op.type for op in tf_graph.get_operations()].count('FusedBatchNormV3') == 20


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny run trained 4 steps in-process (its BN statistics have moved), restored without folding."""
    from test_trainer import tiny_config
    from resnet_graph.training import trainer as trainer_module
    from resnet_graph.serving.inference import RestoredRun
    model_dir = tmp_path_factory.mktemp('fold_bn') / 'run'
    trainer_module.Trainer(tiny_config(model_dir, max_steps=4, eval_every=4), log=lambda line: None).train()
    restored = RestoredRun(str(model_dir), fold_bn=False)
    yield model_dir, restored
    restored.close()


def test_restored_run_evaluates_the_same_folded(trained):
    from resnet_graph.serving.inference import RestoredRun
    model_dir, plain = trained
    folded = RestoredRun(str(model_dir), fold_bn=True)
    try:
        assert not any(op.type.startswith('FusedBatchNorm') for op in folded.graph.get_operations())
        expected, got = plain.evaluate('test'), folded.evaluate('test')
        assert got['images'] == expected['images'] > 0
        assert got['accuracy'] == expected['accuracy'] and got['loss'] == pytest.approx(expected['loss'], abs=1e-5)
        images = plain.loader.get_batch_data(plain.loader.test_ids[:64])[0]
        np.testing.assert_allclose(folded.session.run(folded.model.logits, {folded.model.input_x: images}),
                                   plain.session.run(plain.model.logits, {plain.model.input_x: images}),
                                   rtol=0, atol=1e-4)
    finally:
        folded.close()


def test_exports_fold_and_match_the_unfolded_trainer(trained, tmp_path, monkeypatch):
    import config
    from resnet_graph.export import export
    model_dir, plain = trained
    ids = plain.loader.test_ids[:4]
    images = plain.loader.source.fetch(ids)[0]
    expected = plain.session.run(plain.model.probabilities,
                                 {plain.model.input_x: plain.loader.get_batch_data(ids)[0]})

    monkeypatch.setattr(config, 'FOLD_BN', 'frozen')  # the default: the frozen graph folds, the SavedModel not
    frozen = tmp_path / 'model.pb'
    export(str(model_dir), 'best', 'frozen_graph', str(frozen))
    graph_def = v1.GraphDef()
    graph_def.ParseFromString(frozen.read_bytes())
    assert not any(node.op.startswith('FusedBatchNorm') for node in graph_def.node)
    with tf.Graph().as_default() as graph:
        v1.import_graph_def(graph_def, name='')
        with v1.Session(graph=graph) as session:
            np.testing.assert_allclose(session.run('probabilities:0', {'images:0': images}), expected, atol=1e-5)

    for fold_bn, folded in (('frozen', False), ('on', True)):  # 'on': its variables are the checkpoint's
        monkeypatch.setattr(config, 'FOLD_BN', fold_bn)
        saved = tmp_path / ('saved_model_' + fold_bn)
        export(str(model_dir), 'best', 'saved_model', str(saved))
        loaded = tf.saved_model.load(str(saved))
        served = loaded.signatures['predict_images'](images=tf.constant(images))
        np.testing.assert_allclose(served['probabilities'].numpy(), expected, atol=1e-5)
        ops = [node.op for node in loaded.graph.as_graph_def().node]
        assert any(op.startswith('FusedBatchNorm') for op in ops) != folded, fold_bn
