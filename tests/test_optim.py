"""Training recipes: schedules, warm-up, optimizers (one update against numpy), AdamW, label smoothing,
clipping, weight decay on kernels only, bad combinations; fine-tuning: warm start, excluded head, frozen stages."""
import math
import os
import types

import numpy as np
import pytest
import tensorflow as tf

import config
from conftest import SMALL, ancestors, error_lines, run_cli
from resnet_graph.training import optim, schedules
from resnet_graph.training import trainer as trainer_module
from resnet_graph.nets.model import ResNet
from test_trainer import tiny_config

v1 = tf.compat.v1


def rates(cfg, steps, steps_per_epoch=10, total_steps=100):
    """The learning rate of ``cfg`` at each global step in ``steps`` (the step variable assigned, then read)."""
    with tf.Graph().as_default():
        step = v1.train.get_or_create_global_step()
        lr = schedules.learning_rate(config.RunConfig.defaults(**dict(dict(
            learning_rate=0.1, learning_decay_rate=0.5, learning_decay_steps=30), **cfg)), step, steps_per_epoch,
            total_steps)
        assert lr.op.name == 'learning_rate' and lr.dtype == tf.float32
        with v1.Session() as sess:
            out = []
            for s in steps:
                step.load(s, sess)
                out.append(float(sess.run(lr)))
            return out


def cosine(t):
    return 0.1 * 0.5 * (1 + math.cos(math.pi * t))


@pytest.mark.parametrize('cfg,steps,expected', [
    # the legacy default: 0.1 * 0.5 ** floor(step / 30)
    (dict(schedule='exponential'), [0, 29, 30, 59, 60, 99], [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]),
    # boundaries at epochs 3 and 6 = steps 30 and 60; the boundary step already takes the next rate
    (dict(schedule='piecewise', boundaries_epochs=[3, 6], learning_decay_rate=0.1), [0, 29, 30, 59, 60, 99],
     [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]),
    (dict(schedule='piecewise', boundaries_epochs=[2.5], lr_values=[0.4, 0.3]), [24, 25], [0.4, 0.3]),
    # cosine over the run's 100 steps
    (dict(schedule='cosine'), [0, 25, 50, 75, 100], [0.1, cosine(0.25), 0.05, cosine(0.75), 0.0]),
    # 5 warm-up steps, then cosine over the remaining 95
    (dict(schedule='cosine', warmup_epochs=0.5), [0, 2, 4, 5, 24, 100],
     [0.02, 0.06, 0.1, 0.1, cosine(19 / 95), 0.0]),
])
def test_each_schedule_gives_the_expected_rate(cfg, steps, expected):
    assert rates(cfg, steps) == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize('schedule', ['exponential', 'piecewise', 'cosine'])
def test_warmup_ramps_linearly_to_the_schedule_for_any_schedule(schedule):
    cfg = dict(schedule=schedule, warmup_epochs=2, boundaries_epochs=[5])   # 20 warm-up steps
    warm = rates(cfg, range(25))
    plain = rates(dict(cfg, warmup_epochs=0), range(25))
    assert warm[:20] == pytest.approx([0.1 * (s + 1) / 20 for s in range(20)], rel=1e-6)
    if schedule != 'cosine':  # cosine starts decaying at the end of the warm-up; the others keep their steps
        assert warm[20:] == pytest.approx(plain[20:], rel=1e-6)
    assert warm[19] == pytest.approx(0.1, rel=1e-6)


# -- optimizers: two updates of one kernel and one bias against numpy ----------------------------------------------

GRAD_KERNEL = np.array([0.5, -2.0, 3.0], np.float32)
GRAD_BIAS = np.array([1.0, -0.25], np.float32)
KERNEL0 = np.array([1.0, 2.0, -3.0], np.float32)
BIAS0 = np.array([0.5, -1.5], np.float32)


def two_updates(lr=0.1, **options):
    """(kernel, bias) after two steps on loss = g_k . kernel + g_b . bias (constant gradients g)."""
    with tf.Graph().as_default():
        step = v1.train.get_or_create_global_step()
        with v1.variable_scope('layer'):
            kernel = v1.get_variable('kernel', initializer=KERNEL0)
            bias = v1.get_variable('bias', initializer=BIAS0)
        loss = tf.reduce_sum(GRAD_KERNEL * kernel) + tf.reduce_sum(GRAD_BIAS * bias)
        op, norm, _ = optim.train_op(loss, lr, step, [], **options)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            for _ in range(2):
                sess.run(op)
            assert sess.run(step) == 2
            return sess.run([kernel, bias])


def numpy_adam(x, g, lr=0.1, decay=0.0, b1=0.9, b2=0.999, eps=1e-8, steps=2):
    x, m, v = x.astype(np.float64), 0.0, 0.0
    for t in range(1, steps + 1):
        x = x - lr * decay * x   # decoupled, before Adam's update (torch.optim.AdamW)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    return x


def numpy_momentum(x, g, lr=0.1, mu=0.9, nesterov=False, steps=2):
    x, accum = x.astype(np.float64), 0.0
    for _ in range(steps):
        accum = mu * accum + g
        x = x - lr * (g + mu * accum if nesterov else accum)
    return x


@pytest.mark.parametrize('options,kernel,bias', [
    (dict(optimizer='adam'), numpy_adam(KERNEL0, GRAD_KERNEL), numpy_adam(BIAS0, GRAD_BIAS)),
    (dict(optimizer='momentum', momentum=0.9), numpy_momentum(KERNEL0, GRAD_KERNEL), numpy_momentum(BIAS0, GRAD_BIAS)),
    (dict(optimizer='momentum', momentum=0.9, nesterov=True), numpy_momentum(KERNEL0, GRAD_KERNEL, nesterov=True),
     numpy_momentum(BIAS0, GRAD_BIAS, nesterov=True)),
    # AdamW: the kernel decays, the bias gets Adam's update alone
    (dict(optimizer='adamw', adamw_weight_decay=0.5), numpy_adam(KERNEL0, GRAD_KERNEL, decay=0.5),
     numpy_adam(BIAS0, GRAD_BIAS)),
])
def test_each_optimizer_matches_its_numpy_update(options, kernel, bias):
    got_kernel, got_bias = two_updates(**options)
    # float32 arithmetic: a few ulps of the O(1) values
    np.testing.assert_allclose(got_kernel, kernel, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_bias, bias, rtol=1e-6, atol=1e-6)


def test_adamw_decays_only_kernels_and_only_with_adamw():
    adam_kernel, adam_bias = two_updates(optimizer='adam')
    adamw_kernel, adamw_bias = two_updates(optimizer='adamw', adamw_weight_decay=0.5)
    np.testing.assert_array_equal(adamw_bias, adam_bias)
    assert np.all(np.abs(adamw_kernel - adam_kernel) > 1e-3)
    np.testing.assert_array_equal(two_updates(optimizer='adam', adamw_weight_decay=0.5)[0], adam_kernel)


def test_clipping_bounds_the_applied_global_norm():
    with tf.Graph().as_default():
        step = v1.train.get_or_create_global_step()
        w = v1.get_variable('w', initializer=np.zeros(4, np.float32))
        loss = tf.reduce_sum(tf.constant([3.0, 4.0, 0.0, 12.0]) * w)   # gradient norm 13
        clipped, norm, _ = optim.train_op(loss, 1.0, step, [], optimizer='momentum', momentum=0.0,
                                          clip_gradient_norm=1.3)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            _, reported = sess.run([clipped, norm])
            applied = -sess.run(w)
    assert reported == pytest.approx(13.0)   # the summary's gradient_norm is the norm before clipping
    np.testing.assert_allclose(applied, [0.3, 0.4, 0.0, 1.2], rtol=1e-6)
    assert np.linalg.norm(applied) == pytest.approx(1.3, rel=1e-6)


def test_label_smoothing_gives_the_exact_smoothed_cross_entropy():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    labels = np.array([0, 2])
    eps, classes = 0.1, 3
    targets = (1 - eps) * np.eye(classes)[labels] + eps / classes
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(targets * log_softmax).sum(1).mean()  # the L2 term is not in it (train_op adds its gradient)
    with tf.Graph().as_default():
        model = types.SimpleNamespace(logits=tf.constant(logits, tf.float32), input_y=tf.constant(labels, tf.int64),
                                      num_classes=classes, regularization_loss=tf.constant(0.25), loss='with L2',
                                      cross_entropy='plain')
        assert optim.training_loss(model, 0.0) == 'plain'
        with v1.Session() as sess:
            got = sess.run(optim.training_loss(model, eps))
    assert got == pytest.approx(expected, rel=1e-6)


def test_weight_decay_counts_conv_and_dense_kernels_only(tf_graph):
    net = ResNet(18, 10, 16, 16, 1, weight_decay=1e-2)
    kernels = [v for v in net.variables if v.op.name.endswith('/kernel')]
    others = [v for v in net.variables if not v.op.name.endswith('/kernel')]
    assert {v.op.name.rsplit('/', 1)[1] for v in others} == {'gamma', 'beta', 'moving_mean', 'moving_variance',
                                                              'bias'}
    assert len(kernels) == 21   # 17 convs + 3 shortcut projections + the dense head
    grads = tf.gradients(net.regularization_loss, others)
    assert grads == [None] * len(others)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        values = sess.run(kernels)
        expected = 1e-2 * sum(float((k.astype(np.float64) ** 2).sum()) / 2 for k in values)
        assert sess.run(net.regularization_loss) == pytest.approx(expected, rel=1e-5)
        for v in others:   # BN and bias variables set to large values: the decay term does not move
            v.load(np.full(v.shape.as_list(), 7.0, np.float32), sess)
        assert sess.run(net.regularization_loss) == pytest.approx(expected, rel=1e-5)
        kernels[0].load(np.zeros(kernels[0].shape.as_list(), np.float32), sess)
        assert sess.run(net.regularization_loss) < expected


def test_weight_decay_gradients_equal_the_l2_terms_and_wait_for_each_kernels_own(tf_graph):
    images = np.random.RandomState(3).rand(4, 16, 16, 1).astype(np.float32)
    net = ResNet(18, 10, 16, 16, 1, weight_decay=1e-2, input_tensor=images, label_tensor=[0, 1, 2, 3], training=True)
    variables = net.trainable_variables
    through_the_loss = tf.gradients(net.loss, variables)  # the L2 term differentiated with the loss
    data = list(zip(tf.gradients(net.cross_entropy, variables), variables))
    added = optim.add_weight_decay(data, 1e-2, net.decayed_kernels)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        want, got = sess.run([through_the_loss, [g for g, _ in added]])
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
    decayed = {k.ref() for k in net.decayed_kernels}
    assert len(decayed) == 21 and [v for _, v in added] == variables
    for (gradient, variable), (own, _) in zip(added, data):
        if variable.ref() not in decayed:  # BN and biases: their gradient as it was
            assert gradient is own
            continue
        assert gradient.op.type == 'AddV2' and gradient.op.inputs[0] is own
        assert own.op.name in ancestors(gradient.op.inputs[1].op)  # the term waits for the kernel's own gradient


@pytest.mark.parametrize('args,message', [
    (['--nesterov'], '--nesterov needs --optimizer momentum'),
    (['--optimizer', 'momentum', '--momentum', '0', '--nesterov'], '--nesterov needs --optimizer momentum'),
    (['--schedule', 'piecewise'], '--schedule piecewise needs --boundaries_epochs'),
    (['--schedule', 'piecewise', '--boundaries_epochs', '136,91'], 'strictly increasing, got 136,91'),
    (['--schedule', 'piecewise', '--boundaries_epochs', '91,136', '--lr_values', '0.1,0.01'],
     '--lr_values needs one rate per piece: 3 for 2 boundaries, got 2'),
    (['--boundaries_epochs', '91'], 'belong to --schedule piecewise'),
    (['--schedule', 'piecewise', '--boundaries_epochs', '9x'], 'expected comma-separated numbers'),
    (['--optimizer', 'sgd'], '--optimizer'),
    (['--momentum', '1'], '--momentum must be in [0, 1)'),
    (['--label_smoothing', '1'], '--label_smoothing must be in [0, 1)'),
    (['--clip_gradient_norm', '-1'], '--clip_gradient_norm must be a number >= 0'),
    (['--warmup_epochs', '12'], '--warmup_epochs 12.0 must be shorter than the run'),
    (['--freeze_stages', '2'], '--freeze_stages needs --warm_start_from'),
    (['--warm_start_from', 'x', '--freeze_stages', '5'], '--freeze_stages must be in [0, 4] (the stages'),
    (['--depth', '20', '--warm_start_from', 'x', '--freeze_stages', '4'], '--freeze_stages must be in [0, 3]'),
    (['--variant', 'legacy', '--warm_start_from', 'x', '--freeze_stages', '1'], 'does not apply to --variant legacy'),
    (['--warm_start_from', 'x', '--warm_start_exclude', 'head/,(['], 'is not a regular expression'),
])
def test_bad_recipe_flags_exit_2_with_one_line(args, message, tmp_path):
    result = run_cli('train', '--model_dir', tmp_path / 'run', *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_resuming_with_another_optimizer_or_freeze_is_refused(tmp_path):
    # A run exists once its first checkpoint does (a config.json alone is a failed first start's, provisional).
    run = tmp_path / 'run'
    first = run_cli('train', '--model_dir', run, *SMALL, '--max_steps', '1', cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = sorted(os.listdir(run))
    for args, clash in ((['--optimizer', 'momentum'], "optimizer: saved 'adam', asked 'momentum'"),
                        (['--warm_start_from', 'x', '--freeze_stages', '1'], 'freeze_stages: saved 0, asked 1')):
        result = run_cli('train', '--model_dir', run, *args, cwd=tmp_path)
        lines = error_lines(result.stderr)
        assert result.returncode == 2 and len(lines) == 1 and clash in lines[0], result.stderr
    assert sorted(os.listdir(run)) == before


# -- fine-tuning ---------------------------------------------------------------------------------------------------

WARM_START_RUN = dict(depth=18, image_size=8, batch_size=16, eval_every=3, max_steps=3, optimizer='momentum')


def values_of(checkpoint):
    return {name: tf.train.load_variable(checkpoint, name) for name, _ in v1.train.list_variables(checkpoint)}


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """A run directory whose best/ holds a digits ResNet-18 (8x8) with every variable set to random values."""
    path = tmp_path_factory.mktemp('source')
    rng = np.random.default_rng(3)
    with tf.Graph().as_default():
        net = ResNet(18, 10, 8, 8, 1)
        with v1.Session() as sess:
            for v in net.variables:   # positive values, so they also fit as BN moving variances
                v.load(rng.uniform(0.5, 1.5, v.shape.as_list()).astype(np.float32), sess)
            v1.train.Saver(net.variables).save(sess, str(path / 'best' / 'model.ckpt'), global_step=3)
    return str(path), values_of(str(path / 'best' / 'model.ckpt-3'))


@pytest.mark.slow  # whole training runs
def test_warm_start_restores_all_but_the_head_and_frozen_stages_stay_bitwise(source, tmp_path):
    path, saved = source
    lines = []
    cfg = tiny_config(tmp_path, warm_start_from=path, warm_start_exclude=['head/'], freeze_stages=1,
                      **WARM_START_RUN)
    trainer = trainer_module.Trainer(cfg, log=lines.append)
    assert trainer.train()['step'] == 3
    got = values_of(trainer.run.latest_checkpoint())
    frozen = [n for n in saved if n.startswith(('stem/', 'stage1/'))]
    trained = [n for n in saved if n.startswith(('stage2/', 'stage3/', 'stage4/'))]
    assert len(frozen) == 25 and len(trained) == 75   # 5 and 15 convs, each with its BN's 4 variables
    for name in frozen:   # moving statistics included: their BN updates do not run
        np.testing.assert_array_equal(got[name], saved[name], err_msg=name)
    for name in trained:  # restored, then moved a little by 3 steps at lr 0.002 (BN statistics move freely)
        if 'moving' not in name:
            np.testing.assert_allclose(got[name], saved[name], atol=0.05, err_msg=name)
    assert not np.array_equal(got['stage2/block0/conv1/kernel'], saved['stage2/block0/conv1/kernel'])
    assert not np.array_equal(got['stage4/block1/bn2/moving_mean'], saved['stage4/block1/bn2/moving_mean'])
    assert np.abs(got['head/dense/kernel'] - saved['head/dense/kernel']).max() > 0.5   # fresh, not restored
    slots = [n for n in got if n.endswith('/Momentum')]
    assert 'stage2/block0/conv1/kernel/Momentum' in slots and 'head/dense/kernel/Momentum' in slots
    assert not [n for n in slots if n.startswith(('stem/', 'stage1/'))]   # frozen: not in the var_list
    report = [line for line in lines if line.startswith(('optimizer', 'warm start', 'frozen'))]
    assert report[0].startswith('optimizer momentum 0.9, schedule exponential from 0.002')
    assert report[1] == ('warm start from %s/best/model.ckpt-3: 100 variables restored (stem/conv/kernel, '
                         'stem/bn/gamma, stem/bn/beta, ... (97 more)); 2 initialised fresh (head/dense/kernel, '
                         'head/dense/bias)' % path)
    assert report[2].startswith('frozen: 25 variables (stem/conv/kernel, stem/bn/gamma, stem/bn/beta, ... (22 more))')
    # A resumed run restores its own checkpoint: the source is not read (here it no longer exists).
    resumed = trainer_module.Trainer(cfg.replace(warm_start_from=str(tmp_path / 'gone'), max_steps=4),
                                     log=lines.append).train()
    assert resumed['step'] == 4 and not [line for line in lines[len(report):] if line.startswith('warm start')]


@pytest.mark.slow  # whole training runs
def test_a_checkpoint_with_another_head_needs_the_exclude_and_exits_2(tmp_path):
    checkpoint = str(tmp_path / 'seven' / 'model.ckpt')
    with tf.Graph().as_default():
        ResNet(18, 7, 8, 8, 1)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            v1.train.Saver().save(sess, checkpoint)
    args = ['--depth', '18', '--image_size', '8', '--batch_size', '16', '--max_steps', '1',
            '--model_dir', tmp_path / 'run', '--warm_start_from', checkpoint]
    result = run_cli('train', *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and 'head/dense/kernel with shape [512, 7]' in lines[0], result.stderr
    assert 'exclude it with --warm_start_exclude head/ to train a new head' in lines[0] and 'weights' not in lines[0]
    assert not os.path.exists(tmp_path / 'run')
