"""Learning-rate schedule and optimizer: exponential-decay Adam, as the legacy trainer had."""
import tensorflow as tf

v1 = tf.compat.v1


def exponential_decay(learning_rate, decay_rate, decay_steps, global_step, staircase=True):
    """lr(step) = learning_rate * decay_rate ** (step / decay_steps), floored when staircase: a scalar tensor."""
    return v1.train.exponential_decay(learning_rate, global_step, decay_steps, decay_rate,
                                      staircase=staircase, name='learning_rate')


def train_op(loss, learning_rate, global_step, update_ops):
    """Adam on ``loss`` with the batch-norm updates run in the same step.

    Returns (the op that applies one update and increments ``global_step``,
    the global norm of the gradients: a scalar).
    """
    optimizer = v1.train.AdamOptimizer(learning_rate)
    grads_and_vars = [(g, v) for g, v in optimizer.compute_gradients(loss) if g is not None]
    gradient_norm = tf.linalg.global_norm([g for g, _ in grads_and_vars], name='gradient_norm')
    with tf.control_dependencies(update_ops):
        op = optimizer.apply_gradients(grads_and_vars, global_step=global_step, name='train_op')
    return op, gradient_norm
