"""Learning-rate schedule and optimizer: exponential-decay Adam, as the legacy trainer had."""
import tensorflow as tf

v1 = tf.compat.v1


def exponential_decay(learning_rate, decay_rate, decay_steps, global_step, staircase=True):
    """lr(step) = learning_rate * decay_rate ** (step / decay_steps), floored when staircase: a scalar tensor."""
    return v1.train.exponential_decay(learning_rate, global_step, decay_steps, decay_rate,
                                      staircase=staircase, name='learning_rate')


def train_op(loss, learning_rate, global_step, update_ops, skip_nonfinite=False):
    """Adam on ``loss`` with the batch-norm updates run in the same step.

    Args:
      skip_nonfinite: when the loss or a gradient is NaN or Inf, apply nothing
        (weights, Adam moments and BN statistics stay) and only count the step.
    Returns:
      (train op: one update and ``global_step`` + 1, the global gradient norm
      (scalar), applied: a bool scalar tensor, False for a skipped update, or
      None without skip_nonfinite).
    """
    optimizer = v1.train.AdamOptimizer(learning_rate)
    grads_and_vars = [(g, v) for g, v in optimizer.compute_gradients(loss) if g is not None]
    gradient_norm = tf.linalg.global_norm([g for g, _ in grads_and_vars], name='gradient_norm')

    def apply():
        with tf.control_dependencies(update_ops):
            return optimizer.apply_gradients(grads_and_vars, global_step=global_step, name='train_op')

    if not skip_nonfinite:
        return apply(), gradient_norm, None

    def applied():
        with tf.control_dependencies([apply()]):
            return tf.constant(True)

    def skipped():
        with tf.control_dependencies([v1.assign_add(global_step, 1)]):
            return tf.constant(False)

    finite = tf.logical_and(tf.math.is_finite(loss), tf.math.is_finite(gradient_norm))
    op = tf.cond(finite, applied, skipped, name='train_op')
    return op, gradient_norm, op
