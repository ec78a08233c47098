"""Optimizers and the train op, all on ``tf.compat.v1`` ops (the learning rate: ``schedules.py``).

Optimizers (``--optimizer``): adam (default), momentum (optionally Nesterov), adamw.
AdamW is Adam plus decoupled weight decay (Loshchilov & Hutter 2019), applied as an
explicit ``kernel -= lr * adamw_weight_decay * kernel`` on the conv and dense kernels
only, before Adam's update in the same step (as torch.optim.AdamW). It is independent of
the L2 ``--weight_decay`` term of the loss (its gradient added to the kernels' gradients,
which Adam rescales): both apply when both are set; pure AdamW is
``--optimizer adamw --weight_decay 0``.
"""
import tensorflow as tf

import config
from resnet_graph.training.schedules import learning_rate

v1 = tf.compat.v1
TRAIN = config.TRAIN  # train_op's recipe defaults are the train command's

OPTIMIZERS = ('adam', 'momentum', 'adamw')


def describe(cfg):
    """One line naming the optimizer, the schedule and the regularisers that ``cfg`` (a config.RunConfig) sets."""
    name = cfg.optimizer
    parts = [name]
    if name == 'momentum':
        parts.append('%g%s' % (cfg.momentum, ' nesterov' if cfg.nesterov else ''))
    if name == 'adamw':
        parts.append('(decoupled decay %g on kernels)' % cfg.adamw_weight_decay)
    schedule = cfg.schedule
    text = '%s, schedule %s from %g' % (' '.join(parts), schedule, (cfg.lr_values or [cfg.learning_rate])[0])
    if schedule == 'piecewise':
        text += ' (boundaries at epochs %s)' % ', '.join('%g' % e for e in cfg.boundaries_epochs)
    extras = [('warm-up epochs', cfg.warmup_epochs), ('L2 weight decay', cfg.weight_decay),
              ('label smoothing', cfg.label_smoothing), ('gradient clipping at norm', cfg.clip_gradient_norm)]
    return 'optimizer ' + '; '.join([text] + ['%s %g' % (k, v) for k, v in extras if v])


def optimizer_options(cfg):
    """The keyword arguments (a dict) of ``train_op`` that ``cfg`` (a config.RunConfig) sets."""
    return dict(optimizer=cfg.optimizer, momentum=cfg.momentum, nesterov=cfg.nesterov,
                adamw_weight_decay=cfg.adamw_weight_decay, clip_gradient_norm=cfg.clip_gradient_norm,
                dynamic_loss_scale=cfg.dtype == 'float16')


def training_loss(model, label_smoothing):
    """The data term of the objective to minimise: ``model.cross_entropy``, or with
    label smoothing eps > 0 the cross-entropy against (1 - eps) * one_hot + eps / num_classes.

    The L2 term is not in it: ``train_op`` adds its gradient (``add_weight_decay``).
    The logged and summarised loss stays ``model.loss`` (the plain cross-entropy,
    as validation reports it, plus the L2 term), so train and eval curves remain comparable.
    """
    if not label_smoothing:
        return model.cross_entropy
    one_hot = tf.one_hot(model.input_y, model.num_classes)
    return v1.losses.softmax_cross_entropy(one_hot, model.logits, label_smoothing=label_smoothing,
                                           loss_collection=None)


def add_weight_decay(grads_and_vars, weight_decay, kernels):
    """[(gradient, variable)] -> the same with ``weight_decay * kernel`` added to the gradient of each of
    ``kernels``: the gradient of the L2 term ``weight_decay * sum ||kernel||^2 / 2`` (``regularization_loss``).

    Each term waits for its kernel's own gradient, so no copy of a kernel is
    held through the backward pass; each is computed where its kernel lives
    (towers: the parameter device).
    """
    decayed = {kernel.ref() for kernel in kernels} if weight_decay else set()
    result = []
    for gradient, variable in grads_and_vars:
        if variable.ref() in decayed:
            with tf.control_dependencies([gradient]), v1.colocate_with(variable):
                gradient = gradient + weight_decay * variable
        result.append((gradient, variable))
    return result


def make_optimizer(name, learning_rate, momentum, nesterov):
    """A tf.compat.v1 optimizer: 'adam' and 'adamw' -> AdamOptimizer, 'momentum' -> MomentumOptimizer."""
    if name in ('adam', 'adamw'):
        return v1.train.AdamOptimizer(learning_rate)
    if name == 'momentum':
        return v1.train.MomentumOptimizer(learning_rate, momentum, use_nesterov=nesterov)
    raise ValueError('optimizer=%r is not one of %s' % (name, ', '.join(OPTIMIZERS)))


def decoupled_decay(variables, learning_rate, weight_decay):
    """The ops ``kernel -= learning_rate * weight_decay * kernel`` for the conv/dense kernels among ``variables``."""
    kernels = [v for v in variables if v.op.name.endswith('/kernel')]
    if not weight_decay or not kernels:
        return []
    factor = tf.cast(learning_rate, tf.float32) * weight_decay
    return [v1.assign_sub(k, factor * k, name='decoupled_decay') for k in kernels]


class DynamicLossScale(object):
    """Dynamic loss scaling for float16 training (as TF1's mixed-precision LossScaleOptimizer).

    float16 gradients below about 6e-8 flush to zero: the loss is multiplied by
    ``scale`` before differentiating and the gradients divided by it after.
    A step whose gradients overflow (NaN or Inf) applies nothing and halves the
    scale (never below 1); after ``growth_steps`` finite steps in a row it
    doubles. The state is two variables, ``loss_scale/scale`` (float32) and
    ``loss_scale/good_steps`` (int64), saved with the checkpoints so that a
    resumed run carries on with its scale.
    """

    def __init__(self, initial=2.0 ** 15, growth_steps=2000):
        self.growth_steps = growth_steps
        with v1.variable_scope('loss_scale'):
            self.scale = v1.get_variable('scale', [], tf.float32, v1.constant_initializer(initial), trainable=False)
            self.good_steps = v1.get_variable('good_steps', [], tf.int64, v1.zeros_initializer(), trainable=False)

    def scaled(self, loss):
        """loss * scale: the objective to differentiate."""
        return tf.multiply(loss, self.scale, name='scaled_loss')

    def unscale(self, grads_and_vars):
        """[(gradient of the scaled loss, variable)] -> [(gradient / scale, variable)]."""
        inverse = 1.0 / self.scale
        return [(g * inverse, v) for g, v in grads_and_vars]

    def after_finite(self):
        """The op counting a finite step: good_steps + 1, and at growth_steps the scale doubles (count back to 0)."""
        good = self.good_steps + 1
        grow = good >= self.growth_steps
        return tf.group(v1.assign(self.scale, tf.where(grow, self.scale * 2.0, self.scale)),
                        v1.assign(self.good_steps, tf.where(grow, tf.zeros_like(good), good)),
                        name='loss_scale_finite')

    def after_overflow(self):
        """The op after a non-finite step: the scale halves (not below 1), good_steps back to 0."""
        return tf.group(v1.assign(self.scale, tf.maximum(self.scale * 0.5, 1.0)),
                        v1.assign(self.good_steps, tf.zeros([], tf.int64)), name='loss_scale_overflow')


def build_train_step(cfg, model, global_step, steps_per_epoch, total_steps, var_list=None, update_ops=None,
                     gradients=None, wrap_optimizer=None):
    """The train command's step for ``model`` as ``cfg`` (a run configuration) describes it.

    Args:
      cfg: a config.RunConfig (its recipe: schedule, optimizer, label_smoothing, nan_policy...).
      model: a ``ResNet`` built with training on.
      global_step: the int64 step variable.
      steps_per_epoch, total_steps: what the schedule counts in.
      var_list, update_ops, gradients, wrap_optimizer: as for ``train_op`` (default: every trainable
        variable, the model's batch-norm updates, the gradients of the loss, the optimizer itself).
    Returns:
      (train op, learning rate [scalar], global gradient norm [scalar], applied: bool scalar or None).
    """
    lr = learning_rate(cfg, global_step, steps_per_epoch, total_steps)
    op, gradient_norm, applied = train_op(
        training_loss(model, cfg.label_smoothing), lr, global_step,
        model.update_ops if update_ops is None else update_ops, skip_nonfinite=cfg.nan_policy == 'skip',
        var_list=var_list, gradients=gradients, wrap_optimizer=wrap_optimizer, weight_decay=model.weight_decay,
        decayed_kernels=model.decayed_kernels, **optimizer_options(cfg))
    return op, lr, gradient_norm, applied


def train_op(loss, learning_rate, global_step, update_ops, skip_nonfinite=False, optimizer=TRAIN['optimizer'],
             momentum=TRAIN['momentum'], nesterov=TRAIN['nesterov'], adamw_weight_decay=TRAIN['adamw_weight_decay'],
             clip_gradient_norm=TRAIN['clip_gradient_norm'], var_list=None, gradients=None, wrap_optimizer=None,
             dynamic_loss_scale=False, weight_decay=TRAIN['weight_decay'], decayed_kernels=()):
    """One optimizer step on ``loss`` with the batch-norm updates run in the same step.

    Args:
      loss: the scalar to differentiate (``training_loss``: without the L2
        term when weight_decay is given, or it would count twice).
      weight_decay, decayed_kernels: the L2 term's factor and kernels (a
        model's ``weight_decay`` and ``decayed_kernels``), its gradient added
        to theirs (``add_weight_decay``).
      skip_nonfinite: when the loss or a gradient is NaN or Inf, apply nothing
        (weights, optimizer slots and BN statistics stay) and only count the step.
      optimizer, momentum, nesterov: see ``make_optimizer``.
      adamw_weight_decay: with optimizer 'adamw', the decoupled decay factor
        (applied to the kernels of ``var_list`` before Adam's update).
      clip_gradient_norm: see ``clip_gradients``.
      var_list: the variables to train (default: every trainable one); the others stay (frozen).
      gradients: see ``compute_gradients`` (the towers' averaged gradients, resnet_graph/training/towers.py).
      wrap_optimizer: None, or a function optimizer -> optimizer (the
        SyncReplicasOptimizer of a cluster, resnet_graph/training/distributed.py).
      dynamic_loss_scale: float16 training: differentiate the loss times a
        ``DynamicLossScale`` (created here) and unscale the gradients; a step
        with non-finite gradients is skipped as with skip_nonfinite (which it
        implies) and halves the scale. Not with ``gradients``.
    Returns:
      (train op: one update and ``global_step`` + 1, the global gradient norm
      before clipping (scalar), applied: a bool scalar tensor, False for a
      skipped update, or None without skip_nonfinite and dynamic_loss_scale).
    """
    if dynamic_loss_scale and gradients:
        raise ValueError('dynamic_loss_scale=True needs the gradients of loss (gradients=None)')
    scale = DynamicLossScale() if dynamic_loss_scale else None
    opt = make_optimizer(optimizer, learning_rate, momentum, nesterov)
    opt = wrap_optimizer(opt) if wrap_optimizer else opt
    grads_and_vars = compute_gradients(opt, loss, var_list, gradients, scale)
    grads_and_vars = add_weight_decay(grads_and_vars, weight_decay, decayed_kernels)
    grads_and_vars, gradient_norm = clip_gradients(grads_and_vars, clip_gradient_norm)

    def apply():
        return apply_gradients(opt, grads_and_vars, learning_rate, global_step, update_ops,
                               adamw_weight_decay if optimizer == 'adamw' else 0.0)

    if not (skip_nonfinite or scale):
        return apply(), gradient_norm, None
    op = apply_if_finite(apply, loss, gradient_norm, global_step, scale)
    return op, gradient_norm, op


def compute_gradients(opt, loss, var_list=None, gradients=None, scale=None):
    """The gradients of ``loss``, or the ones ``gradients`` computes, without the variables that have none.

    Args:
      opt, loss: the optimizer whose ``compute_gradients`` differentiates ``loss``, a scalar tensor.
      var_list: the variables to differentiate for (None: every trainable variable).
      gradients: None, or a function var_list -> [(gradient, variable)] (the towers' averaged gradients).
      scale: None, or a ``DynamicLossScale``: ``loss`` times its scale is differentiated, the gradients unscaled.
    Returns:
      [(gradient, variable)], each gradient shaped as its variable.
    """
    computed = gradients(var_list) if gradients else opt.compute_gradients(
        scale.scaled(loss) if scale else loss, var_list=var_list)
    grads_and_vars = [(g, v) for g, v in computed if g is not None]
    return scale.unscale(grads_and_vars) if scale else grads_and_vars


def clip_gradients(grads_and_vars, clip_norm):
    """The gradients' global norm and, when ``clip_norm`` > 0, the gradients rescaled to at most that norm.

    Args:
      grads_and_vars: [(gradient, variable)].
      clip_norm: a float; 0 leaves the gradients as they are.
    Returns:
      ([(gradient, variable)], the global norm before clipping: a scalar tensor named ``gradient_norm``).
    """
    gradient_norm = tf.linalg.global_norm([g for g, _ in grads_and_vars], name='gradient_norm')
    if clip_norm:
        clipped, _ = tf.clip_by_global_norm([g for g, _ in grads_and_vars], clip_norm, use_norm=gradient_norm)
        grads_and_vars = list(zip(clipped, [v for _, v in grads_and_vars]))
    return grads_and_vars, gradient_norm


def apply_gradients(opt, grads_and_vars, learning_rate, global_step, update_ops, decoupled_weight_decay=0.0):
    """The update op: decoupled decay of the kernels, then the batch-norm updates and the optimizer's step.

    Args:
      opt, grads_and_vars: the optimizer and the [(gradient, variable)] it applies.
      learning_rate: a float or scalar tensor (the decay's factor is learning_rate * decoupled_weight_decay).
      global_step: the int64 step variable, incremented by the op.
      update_ops: ops to run before the update (the batch-norm moving averages).
      decoupled_weight_decay: AdamW's factor on the kernels among the variables (0: no decay ops).
    Returns:
      the op ``train_op`` applying the gradients.
    """
    # The decay writes the kernels: only after every gradient (hence every read of the forward pass).
    with tf.control_dependencies([g for g, _ in grads_and_vars]):
        decay = decoupled_decay([v for _, v in grads_and_vars], learning_rate, decoupled_weight_decay)
    with tf.control_dependencies(list(update_ops) + decay):
        return opt.apply_gradients(grads_and_vars, global_step=global_step, name='train_op')


def apply_if_finite(apply, loss, gradient_norm, global_step, scale=None):
    """Runs ``apply()``'s update when the loss and the gradient norm are finite, else only counts the step.

    Args:
      apply: a function building the update op (``apply_gradients``), called inside the finite branch.
      loss, gradient_norm: scalar tensors.
      global_step: the int64 step variable (a skipped step adds 1 to it itself).
      scale: None, or the ``DynamicLossScale``: a finite step counts towards growing it, a skipped one halves it.
    Returns:
      a bool scalar tensor named ``train_op``: True when the update was applied, False when skipped.
    """
    def applied():
        with tf.control_dependencies([apply()]):
            # After the update, hence after every read of the scale by this step's gradients.
            with tf.control_dependencies([scale.after_finite()] if scale else []):
                return tf.constant(True)

    def skipped():
        with tf.control_dependencies([v1.assign_add(global_step, 1)] + ([scale.after_overflow()] if scale else [])):
            return tf.constant(False)

    finite = tf.logical_and(tf.math.is_finite(loss), tf.math.is_finite(gradient_norm))
    return tf.cond(finite, applied, skipped, name='train_op')
