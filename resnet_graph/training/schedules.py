"""Learning-rate schedules on ``tf.compat.v1`` ops.

Schedules (``--schedule``), all functions of the absolute global step:
- exponential (default, as the legacy trainer): lr * decay_rate ** floor(step / decay_steps);
- piecewise: ``values[i]`` from the first step at or after boundary ``i`` (boundaries
  given in epochs, so ``--boundaries_epochs 91`` decays from the first step of epoch 92);
- cosine: lr * (1 + cos(pi * t)) / 2, t going from 0 at the end of the warm-up to 1 at
  the run's total step count (the last update gets a small positive rate).
Linear warm-up (``--warmup_epochs``) multiplies any of them by min(1, (step + 1) / W)
over the first W steps, so the first update is never 0 and step W - 1 reaches the schedule.
"""
import math

import tensorflow as tf

v1 = tf.compat.v1

SCHEDULES = ('exponential', 'piecewise', 'cosine')


def piecewise_constant(boundaries, values, global_step):
    """``values[i]`` for boundaries[i-1] <= step < boundaries[i] (steps, increasing): a float32 scalar.

    Unlike tf.compat.v1.train.piecewise_constant, the step equal to a boundary
    already takes the next value, as the exponential staircase does.
    """
    if len(values) != len(boundaries) + 1:
        raise ValueError('values needs len(boundaries) + 1 = %d entries, got %d'
                         % (len(boundaries) + 1, len(values)))
    step = tf.cast(global_step, tf.int64)
    passed = tf.cast(step >= tf.constant(list(boundaries), tf.int64, shape=[len(boundaries)]), tf.int32)
    return tf.gather(tf.constant(values, tf.float32), tf.reduce_sum(passed))


def cosine_decay(learning_rate, start, end, global_step):
    """learning_rate * (1 + cos(pi * t)) / 2 with t = (step - start) / (end - start) clipped to [0, 1]."""
    span = float(max(end - start, 1))
    t = tf.clip_by_value((tf.cast(global_step, tf.float32) - float(start)) / span, 0.0, 1.0)
    return learning_rate * 0.5 * (1.0 + tf.cos(math.pi * t))


def linear_warmup(learning_rate, warmup_steps, global_step):
    """learning_rate * min(1, (step + 1) / warmup_steps); learning_rate itself when warmup_steps is 0."""
    if not warmup_steps:
        return learning_rate
    ramp = tf.minimum(1.0, (tf.cast(global_step, tf.float32) + 1.0) / float(warmup_steps))
    return learning_rate * ramp


def epochs_to_steps(epochs, steps_per_epoch):
    """Epochs (floats) -> whole steps (rounded)."""
    return int(round(epochs * steps_per_epoch))


def learning_rate(cfg, global_step, steps_per_epoch, total_steps):
    """The run's learning rate as a scalar float32 tensor named ``learning_rate``.

    Args:
      cfg: the run's config.RunConfig (schedule, learning_rate, learning_decay_rate,
        learning_decay_steps, boundaries_epochs, lr_values, warmup_epochs).
      global_step: the int64 global step variable.
      steps_per_epoch, total_steps: ints, to turn epochs into steps.
    """
    schedule, base = cfg.schedule, cfg.learning_rate
    warmup = epochs_to_steps(cfg.warmup_epochs, steps_per_epoch)
    with v1.name_scope('learning_rate_schedule'):
        if schedule == 'exponential':
            lr = v1.train.exponential_decay(base, global_step, cfg.learning_decay_steps,
                                            cfg.learning_decay_rate, staircase=True)
        elif schedule == 'piecewise':
            boundaries = [epochs_to_steps(e, steps_per_epoch) for e in cfg.boundaries_epochs]
            values = cfg.lr_values or [base * cfg.learning_decay_rate ** i for i in range(len(boundaries) + 1)]
            lr = piecewise_constant(boundaries, values, global_step)
        elif schedule == 'cosine':
            lr = cosine_decay(base, warmup, total_steps, global_step)
        else:
            raise ValueError('schedule=%r is not one of %s' % (schedule, ', '.join(SCHEDULES)))
        lr = linear_warmup(tf.cast(lr, tf.float32), warmup, global_step)
    return tf.identity(lr, name='learning_rate')
