"""Learning-rate schedule and optimizer: exponential-decay Adam, as the legacy trainer had."""
import tensorflow as tf

v1 = tf.compat.v1


def exponential_decay(learning_rate, decay_rate, decay_steps, global_step, staircase=True):
    """lr(step) = learning_rate * decay_rate ** (step / decay_steps), floored when staircase: a scalar tensor."""
    return v1.train.exponential_decay(learning_rate, global_step, decay_steps, decay_rate,
                                      staircase=staircase, name='learning_rate')


def train_op(loss, learning_rate, global_step):
    """Adam on ``loss`` with the batch-norm updates (``UPDATE_OPS``) run in the same step.

    Returns the op that applies one update and increments ``global_step``.
    """
    optimizer = v1.train.AdamOptimizer(learning_rate)
    with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
        return optimizer.minimize(loss, global_step=global_step, name='train_op')
