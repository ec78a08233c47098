"""Mixed precision (``--dtype``): float32 master weights, low-precision convolutions, float16 loss scaling."""
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY, error_lines, run_cli
from resnet_graph.nets import layers
from resnet_graph.training import optim
from resnet_graph.serving.inference import RestoredRun
from resnet_graph.nets.model import ResNet
from resnet_graph.training.run_dir import RunDir

pytestmark = pytest.mark.slow  # training runs in each compute dtype

v1 = tf.compat.v1

# max |logits - float32 logits| / max |float32 logits| allowed, from the same weights. bfloat16 keeps 8
# significant bits (about 3 decimal digits: 0.4 % per rounding), float16 11 (0.05 %); ~20 layers of
# a ResNet-18 accumulate that. Measured on tiny trained runs (3 batches): at most 0.8 % (bfloat16) and
# 0.09 % (float16) with the moving statistics, 3.2 % and 0.31 % with batch statistics (normalising by
# a 16-image batch's standard deviation amplifies the rounding). The bounds leave about 2x to that; a
# wrong layer (an unnormalised or float32-only path missed) moves the logits by tens of percent.
TOLERANCE = {'bfloat16': {False: 0.015, True: 0.06}, 'float16': {False: 0.002, True: 0.006}}


@pytest.fixture(scope='module')
def bf16_run(tmp_path_factory):
    """A tiny run trained with --dtype bfloat16 through the CLI (4 steps, validated once)."""
    model_dir = tmp_path_factory.mktemp('dtype') / 'run'
    result = run_cli('train', *TINY, '--max_steps', 4, '--eval_every', 4, '--dtype', 'bfloat16',
                     '--model_dir', model_dir)
    assert result.returncode == 0, result.stderr
    return str(model_dir), result.stdout


def _network(cfg, dtype, training):
    """The run's network in ``dtype`` in a new graph: (graph, model)."""
    graph = tf.Graph()
    with graph.as_default():
        model = ResNet.from_config(cfg, training=training, dtype=dtype, fold_bn=False)
    return graph, model


def _logits(cfg, dtype, checkpoint, images, training=False):
    """Logits of the run's network in ``dtype`` with ``checkpoint`` restored; also the variables' (name, dtype)."""
    graph, model = _network(cfg, dtype, training)
    with graph.as_default(), v1.Session() as sess:
        v1.train.Saver().restore(sess, checkpoint)
        logits = sess.run(model.logits, {model.input_x: images})
    return logits, [(v.op.name, v.dtype.base_dtype.name, v.shape.as_list()) for v in model.variables]


def test_a_bfloat16_run_trains_evaluates_and_records_its_dtype(bf16_run):
    model_dir, stdout = bf16_run
    assert 'test accuracy of the best checkpoint' in stdout
    assert RunDir(model_dir).load_config().dtype == 'bfloat16'
    restored = RestoredRun(model_dir)  # what evaluate, predict and export build, from config.json
    try:
        assert restored.model.dtype == tf.bfloat16 and restored.model.logits.dtype == tf.float32
        metrics = restored.evaluate('test')
    finally:
        restored.close()
    assert metrics['images'] == 269 and 0 <= metrics['accuracy'] <= 1 and np.isfinite(metrics['loss'])


@pytest.mark.parametrize('training', [False, True])
def test_the_same_weights_give_logits_close_to_float32(bf16_run, training):
    model_dir, _ = bf16_run
    cfg, checkpoint = RunDir(model_dir).load_config(), RunDir(model_dir).best_checkpoint()
    images = np.random.RandomState(0).uniform(size=(16, 16, 16, 1)).astype(np.float32)
    reference, names = _logits(cfg, 'float32', checkpoint, images, training)  # a bfloat16 run's checkpoint
    assert np.abs(reference).max() > 0.1
    for dtype in ('bfloat16', 'float16'):
        logits, low_names = _logits(cfg, dtype, checkpoint, images, training)
        assert logits.dtype == np.float32 and low_names == names  # float32 variables, named as before
        error = np.abs(logits - reference).max() / np.abs(reference).max()
        assert error <= TOLERANCE[dtype][training], (dtype, training, error)
    assert {dtype for _, dtype, _ in names} == {'float32'}


def test_checkpoints_are_interchangeable_between_dtypes(bf16_run, tmp_path):
    model_dir, _ = bf16_run
    cfg, checkpoint = RunDir(model_dir).load_config(), RunDir(model_dir).best_checkpoint()
    images = np.random.RandomState(1).uniform(size=(4, 16, 16, 1)).astype(np.float32)
    bf16_logits, _ = _logits(cfg, 'bfloat16', checkpoint, images)
    graph, _ = _network(cfg, 'float32', False)  # bfloat16 run -> float32 graph -> saved again
    with graph.as_default(), v1.Session() as sess:
        saver = v1.train.Saver()
        saver.restore(sess, checkpoint)
        resaved = saver.save(sess, str(tmp_path / 'float32.ckpt'))
    saved, written = dict(v1.train.list_variables(checkpoint)), dict(v1.train.list_variables(resaved))
    assert written and all(saved[name] == shape for name, shape in written.items())  # same names and shapes
    again, _ = _logits(cfg, 'bfloat16', resaved, images)  # float32 checkpoint -> bfloat16 graph
    np.testing.assert_array_equal(again, bf16_logits)


def test_low_precision_is_only_in_the_convolutions_and_float32_adds_no_op(tf_graph):
    model = ResNet(18, 10, 16, 16, 3, training=True, dtype='bfloat16')
    ops = tf_graph.get_operations()
    matmuls = [op for op in ops if op.type in ('Conv2D', 'MatMul')]
    assert matmuls and all(op.inputs[0].dtype == op.inputs[1].dtype == tf.bfloat16 for op in matmuls)
    norms = [op for op in ops if op.type == 'FusedBatchNormV3']
    assert norms and all(op.inputs[0].dtype == tf.bfloat16 and op.outputs[1].dtype == tf.float32 for op in norms)
    for tensor in (model.logits, model.probabilities, model.loss, model.regularization_loss):
        assert tensor.dtype == tf.float32
    with tf.Graph().as_default() as graph:
        ResNet(18, 10, 16, 16, 3, training=True)
        assert not [op for op in graph.get_operations() if op.type == 'Cast' and 'float' in op.get_attr('DstT').name
                    and op.get_attr('DstT') != tf.float32]
        assert not [t for op in graph.get_operations() for t in op.outputs if t.dtype in (tf.bfloat16, tf.float16)]


def test_a_bad_dtype_is_a_value_error_naming_it():
    with tf.Graph().as_default(), pytest.raises(ValueError, match="dtype='half' is not one of float32, bfloat16"):
        ResNet(18, 10, 16, 16, 3, dtype='half')


def test_dynamic_loss_scale_halves_on_overflow_and_doubles_after_good_steps(tf_graph):
    scale = optim.DynamicLossScale(initial=8.0, growth_steps=2)
    finite, overflow = scale.after_finite(), scale.after_overflow()
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        state = lambda: (sess.run(scale.scale), sess.run(scale.good_steps))  # noqa: E731
        sess.run(overflow)
        assert state() == (4.0, 0)
        sess.run(finite)
        assert state() == (4.0, 1)
        sess.run(overflow)  # an overflow also restarts the count
        assert state() == (2.0, 0)
        sess.run(finite)
        sess.run(finite)
        assert state() == (4.0, 0)
        for _ in range(5):
            sess.run(overflow)
        assert state() == (1.0, 0)  # never below 1


def test_float16_loss_scaling_skips_a_step_with_a_non_finite_gradient(tf_graph):
    # loss = big * sum(w): finite, but its scaled gradient big * 2^15 overflows float32 when big = 1e35.
    w = v1.get_variable('w', [3], initializer=v1.constant_initializer([1.0, 2.0, 3.0]))
    big = v1.placeholder(tf.float32, [])
    global_step = v1.train.get_or_create_global_step()
    op, norm, applied = optim.train_op(big * tf.reduce_sum(w), 0.5, global_step, [], optimizer='momentum',
                                       momentum=0.0, dynamic_loss_scale=True)
    with v1.variable_scope('loss_scale', reuse=True):
        scale, good = v1.get_variable('scale', dtype=tf.float32), v1.get_variable('good_steps', dtype=tf.int64)
    with v1.Session() as sess:
        sess.run(v1.global_variables_initializer())
        assert sess.run(applied, {big: 1e35}) is np.False_
        assert sess.run([w, scale, good, global_step]) == [pytest.approx([1, 2, 3]), 2.0 ** 14, 0, 1]
        done, gradient_norm = sess.run([applied, norm], {big: 2.0})
        assert done and gradient_norm == pytest.approx(2 * 3 ** 0.5)  # unscaled: d loss / d w = 2
        np.testing.assert_array_equal(sess.run(w), [0.0, 1.0, 2.0])  # w - 0.5 * 2
        assert sess.run([scale, good, global_step]) == [2.0 ** 14, 1, 2]


def test_dynamic_loss_scale_is_set_by_float16_only():
    from config import RunConfig
    assert optim.optimizer_options(RunConfig(dtype='float16'))['dynamic_loss_scale'] is True
    assert not optim.optimizer_options(RunConfig(dtype='bfloat16'))['dynamic_loss_scale']
    # runs saved before --dtype: float32
    assert not optim.optimizer_options(RunConfig.from_json({'depth': 18}))['dynamic_loss_scale']


@pytest.mark.parametrize('args,message', [
    (['--dtype', 'half'], 'flag --dtype=half: value should be one of <%s>' % '|'.join(layers.COMPUTE_DTYPES)),
    (['--dtype', 'float16', '--num_devices', '2'], '--dtype float16 needs one tower'),
])
def test_a_bad_dtype_exits_2_with_one_line(args, message, tmp_path):
    result = run_cli('train', '--model_dir', tmp_path / 'run', *args, cwd=tmp_path)
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    line, = error_lines(result.stderr)
    assert message in line and os.listdir(tmp_path) == []


@pytest.mark.parametrize('nan_policy', ['stop', 'skip'])
def test_the_trainer_counts_float16_overflows_apart_from_a_non_finite_loss(nan_policy, tmp_path):
    from resnet_graph.training import trainer as trainer_module
    lines = []
    trainer = object.__new__(trainer_module.Trainer)  # only what _check_loss reads
    from config import RunConfig
    trainer.cfg, trainer.log = RunConfig(dtype='float16', nan_policy=nan_policy), lines.append
    trainer.run = RunDir(str(tmp_path))
    trainer.skipped = trainer.overflows = 0
    trainer._check_loss(2.3, False, 1)  # finite loss, update not applied: the gradients overflowed
    assert (trainer.overflows, trainer.skipped, lines) == (1, 0, [])
    if nan_policy == 'stop':
        with pytest.raises(trainer_module.TrainingError, match='the loss became nan at step 2'):
            trainer._check_loss(float('nan'), False, 2)
    else:
        trainer._check_loss(float('nan'), False, 2)
        assert (trainer.overflows, trainer.skipped) == (1, 1) and lines[0].startswith('step 2: loss nan, update')
