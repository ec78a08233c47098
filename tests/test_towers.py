"""Towers on several devices of one machine (resnet_graph/towers.py): parity with one device, the CLI.

The network is the smallest ResNet, depth 8 (CIFAR-style: 7 convolutions) on 8x8 digits.
"""
import json

import numpy as np
import pytest
import tensorflow as tf

import config
from conftest import error_lines, run_cli
from resnet_graph.training import optim
from resnet_graph.training import towers
from resnet_graph.nets.model import ResNet

pytestmark = pytest.mark.slow  # multi-tower training runs

v1 = tf.compat.v1
CFG = config.RunConfig.defaults(depth=8, image_size=8, channels=1, num_classes=10, num_devices=2)


def _batch(n=8):
    rng = np.random.RandomState(3)
    return rng.rand(n, 8, 8, 1).astype(np.float32), rng.randint(0, 10, n).astype(np.int64)


def _one_device(checkpoint, images, labels, training):
    """Loss, gradients (by variable name) and BN moving means after the update ops, for one network on ``images``."""
    with tf.Graph().as_default():
        x, y = v1.placeholder(tf.float32, [None, 8, 8, 1]), v1.placeholder(tf.int64, [None])
        net = ResNet.from_config(CFG, input_tensor=x, label_tensor=y, training=training)
        grads = tf.gradients(net.loss, net.trainable_variables)
        means = [v for v in net.variables if v.op.name.endswith('moving_mean')]
        with v1.Session() as sess:
            v1.train.Saver().restore(sess, checkpoint)
            loss, values = sess.run([net.loss, grads], {x: images, y: labels})
            sess.run(net.update_ops, {x: images, y: labels})
            return loss, dict(zip([v.op.name for v in net.trainable_variables], values)), sess.run(means)


def _with_weight_decay(model, averaged):
    """The towers' averaged gradients of the data term with the L2 term's added, as ``optim.train_op`` does:
    the gradients of the one-device loss."""
    return optim.add_weight_decay(averaged, model.weight_decay, model.decayed_kernels)


@pytest.fixture(scope='module')
def towers_run(tmp_path_factory):
    """Two towers on /cpu:0 and /cpu:1: a checkpoint of their initial weights and their results on one batch."""
    images, labels = _batch()
    checkpoint = str(tmp_path_factory.mktemp('towers') / 'init.ckpt')
    results = {}
    with tf.Graph().as_default():
        model = towers.build_model(CFG, '', tf.constant(images), tf.constant(labels))
        towers_own = model.average_gradients()
        averaged = _with_weight_decay(model, towers_own)
        means = [v for v in model.variables if v.op.name.endswith('moving_mean')]
        config_proto = towers.session_config(CFG)
        with v1.Session(config=config_proto) as sess:
            assert sorted(d.name[-5:] for d in sess.list_devices()) == ['CPU:0', 'CPU:1']
            sess.run(v1.global_variables_initializer())
            v1.train.Saver().save(sess, checkpoint)
            for training in (False, True):
                feed = {model.is_training: training}
                loss, grads = sess.run([model.loss, [g for g, _ in averaged]], feed)
                results[training] = (loss, dict(zip([v.op.name for _, v in averaged], grads)))
            sess.run(model.update_ops, {model.is_training: True})
            results['means'] = sess.run(means)
        placement = dict(tower1=model.towers[1].logits.device, variable=model.variables[0].device,
                         averaged=towers_own[0][0].device,
                         decayed=averaged[0][0].op.colocation_groups(), updates=len(model.update_ops),
                         all_updates=len(v1.get_collection(v1.GraphKeys.UPDATE_OPS)))
    return checkpoint, images, labels, results, placement


def test_towers_place_compute_per_device_and_variables_on_the_parameter_device(towers_run):
    placement = towers_run[4]
    assert placement['tower1'].upper().endswith('CPU:1') and placement['variable'].upper().endswith('CPU:0')
    assert placement['averaged'].upper().endswith('CPU:0')
    assert placement['decayed'] == [b'loc:@stem/conv/kernel']  # the weight decay term: where its kernel lives
    assert placement['all_updates'] == 2 * placement['updates'] == 2 * 2 * 7  # BN stats: the first tower's only


def test_two_towers_give_one_devices_loss_and_gradients_on_the_same_global_batch(towers_run):
    checkpoint, images, labels, results, _ = towers_run
    # Inference-mode batch norm: the towers compute exactly the one-device loss and gradient of the whole batch.
    loss, grads, _ = _one_device(checkpoint, images, labels, training=False)
    tower_loss, tower_grads = results[False]
    assert tower_loss == pytest.approx(loss, rel=1e-5)
    assert set(tower_grads) == set(grads) and len(grads) == 23
    for name, value in grads.items():
        np.testing.assert_allclose(tower_grads[name], value, rtol=1e-4, atol=1e-6, err_msg=name)
    # Training mode: each tower normalises with its half's statistics (no synchronised BN), so the averaged
    # gradient is the mean of one device's gradients on each half, and the moving statistics are the first half's.
    halves = [_one_device(checkpoint, images[s], labels[s], training=True) for s in (slice(0, 4), slice(4, 8))]
    tower_loss, tower_grads = results[True]
    assert tower_loss == pytest.approx((halves[0][0] + halves[1][0]) / 2, rel=1e-5)
    for name in grads:
        np.testing.assert_allclose(tower_grads[name], (halves[0][1][name] + halves[1][1][name]) / 2,
                                   rtol=1e-4, atol=1e-6, err_msg=name)
    for tower_mean, half_mean in zip(results['means'], halves[0][2]):
        np.testing.assert_allclose(tower_mean, half_mean, rtol=1e-5, atol=1e-7)


def test_synchronised_batch_norm_gives_one_devices_training_step_on_the_whole_batch(towers_run):
    # --sync_bn: in training mode too the towers compute exactly what one device computes on the whole batch.
    checkpoint, images, labels, _, _ = towers_run
    loss, grads, means = _one_device(checkpoint, images, labels, training=True)
    cfg = CFG.replace(sync_bn=True)
    with tf.Graph().as_default():
        model = towers.build_model(cfg, '', tf.constant(images), tf.constant(labels))
        averaged = _with_weight_decay(model, model.average_gradients())
        # The all-reduces live in the training branches of the batch norms' conds (functions of the graph).
        collectives = [node for f in v1.get_default_graph().as_graph_def().library.function for node in f.node_def
                       if node.op == 'CollectiveReduce']
        moving = [v for v in model.variables if v.op.name.endswith('moving_mean')]
        with v1.Session(config=towers.session_config(cfg)) as sess:
            v1.train.Saver().restore(sess, checkpoint)
            # One run holds every tower's half of each all-reduce: the first tower's updates alone would wait.
            tower_loss, tower_grads, _ = sess.run([model.loss, [g for g, _ in averaged], model.update_ops],
                                                  {model.is_training: True})
            tower_means = sess.run(moving)
    # 7 BNs x 2 reductions (sums, squares), forward and backward: one all-reduce instance each.
    assert len({node.attr['instance_key'].i for node in collectives}) == 7 * 2 * 2
    assert 'synchronised across the towers' in towers.describe(model, 8)[0]
    assert tower_loss == pytest.approx(loss, rel=1e-5)
    names = [v.op.name for _, v in averaged]
    for name, value in zip(names, tower_grads):
        np.testing.assert_allclose(value, grads[name], rtol=1e-4, atol=1e-6, err_msg=name)
    for tower_mean, mean in zip(tower_means, means):
        np.testing.assert_allclose(tower_mean, mean, rtol=1e-5, atol=1e-7)


def test_synchronised_batch_norm_in_bfloat16_stays_close_to_one_device(towers_run):
    checkpoint, images, labels, _, _ = towers_run
    loss = _one_device(checkpoint, images, labels, training=True)[0]
    cfg = CFG.replace(sync_bn=True, dtype='bfloat16')
    with tf.Graph().as_default():
        model = towers.build_model(cfg, '', tf.constant(images), tf.constant(labels))
        with v1.Session(config=towers.session_config(cfg)) as sess:
            v1.train.Saver().restore(sess, checkpoint)
            assert sess.run(model.loss, {model.is_training: True}) == pytest.approx(loss, rel=0.02)


TRAIN = ['--depth', '8', '--image_size', '8', '--batch_size', '8', '--log_every', '2', '--max_steps', '4',
         '--eval_every', '4']


@pytest.mark.parametrize('sync_bn', [False, True])
def test_train_with_two_devices_then_evaluate(tmp_path, sync_bn):
    run = tmp_path / 'run'
    result = run_cli('train', *TRAIN, '--num_devices', '2', '--model_dir', run, *(['--sync_bn'] if sync_bn else []),
                     timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'towers: 2 on /cpu:0, /cpu:1 (batch 8 split 4 per tower); BN statistics %s' % (
        'synchronised across the towers' if sync_bn else "each tower's own") in result.stdout
    assert 'step 4/4 ' in result.stdout and (run / 'model.ckpt-4.index').exists()
    assert json.loads((run / 'config.json').read_text())['num_devices'] == 2
    if not sync_bn:
        return  # evaluating a towers run rebuilds one tower either way: checked once
    evaluation = run_cli('evaluate', '--model_dir', run, '--split', 'validation', '--json')
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    assert json.loads(evaluation.stdout)['accuracy'] == json.loads((run / 'best.json').read_text())[
        'validation_accuracy']


@pytest.mark.parametrize('flags,message', [
    (['--num_devices', '3'], '--batch_size 8 does not split into 3 towers; use a multiple of 3'),
    (['--devices', '/cpu:0,/tpu:1'], '--devices /tpu:1: each device is /cpu:N or /gpu:N'),
    (['--num_devices', '0'], '--num_devices must be at least 1, got 0'),
    (['--sync_bn'], '--sync_bn synchronises batch norm across towers: use it with --num_devices 2 or more'),
    (['--sync_replicas'], '--sync_replicas synchronises the workers of a TF_CONFIG cluster and there is no TF_CONFIG'),
])
def test_bad_device_flags_are_one_line_and_exit_2(tmp_path, flags, message):
    result = run_cli('train', *TRAIN, '--model_dir', tmp_path / 'run', *flags)
    assert result.returncode == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not (tmp_path / 'run').exists()
