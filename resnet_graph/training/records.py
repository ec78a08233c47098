"""Checks of the run directory's JSON records: a damaged config.json or best.json is named with its field.

A saved value is never blamed on a flag: the messages name the file and the
field ("D/config.json: depth ..."), since the user may have given no flag at all.
"""
import math
import numbers

import config
from resnet_graph.errors import UsageError

# Keys the run adds to its configuration after loading the data (trainer.Trainer), with their checks.
DERIVED = dict(num_classes=lambda v: _is_int(v) and v >= 1, channels=lambda v: _is_int(v) and v in (1, 3, 4),
               mean=lambda v: _numbers(v), std=lambda v: _numbers(v) and all(x > 0 for x in _as_list(v)))
# Numeric lower bounds a graph can be rebuilt with (train.validate checks the rest when training resumes).
LOWER_BOUNDS = dict(image_size=8, batch_size=1, max_to_keep=1, epochs=1, log_every=1)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _numbers(value):
    return all(isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) for x in _as_list(value))


def _type_ok(default, value):
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _is_int(value)
    if isinstance(default, float):
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _damaged(path, field, value, expected):
    return UsageError('%s is damaged: %s is %r, expected %s; restore the file (or train into a new --model_dir)'
                      % (path, field, value, expected))


# The fields every config.json holds (trained and imported runs, of every version).
RECORDED = ('depth', 'num_classes', 'image_size', 'dataset')


def check_config(saved, path):
    """Returns ``saved`` (the parsed config.json at ``path``) when its fields have usable types and values.

    Raises UsageError naming the file and the first bad field (a list instead
    of an object, a string depth, depth 19, image_size 0 ...).
    """
    if not isinstance(saved, dict):
        raise UsageError('%s is damaged: a JSON %s, expected an object of settings; restore the file (or train '
                         'into a new --model_dir)' % (path, 'null' if saved is None else type(saved).__name__))
    missing = [key for key in RECORDED if key not in saved]
    if missing:  # every version wrote them: a default in their place would build another network
        raise UsageError('%s is damaged: it lacks %s; restore the file (or train into a new --model_dir)'
                         % (path, ', '.join(missing)))
    for key, value in saved.items():
        if key == 'dataset' and value is None:  # an imported run (import_checkpoint, import_keras): no data set
            continue
        if key in config.TRAIN and key != 'model_dir' and not _type_ok(config.TRAIN[key], value):
            kind = type(config.TRAIN[key]).__name__
            raise _damaged(path, key, value, '%s %s' % ('an' if kind[0] in 'aeiou' else 'a', kind))
        if key in DERIVED and not DERIVED[key](value):
            raise _damaged(path, key, value, 'a valid %s' % key)
        if key in LOWER_BOUNDS and value < LOWER_BOUNDS[key]:
            raise _damaged(path, key, value, 'at least %d' % LOWER_BOUNDS[key])
    from resnet_graph.nets import variants
    try:  # depth is there (RECORDED)
        variants.resolve(saved['depth'], **variants.from_config(config.RunConfig.from_json(saved)))
    except (ValueError, TypeError) as e:
        raise UsageError('%s is damaged: %s; restore the file (or train into a new --model_dir)' % (path, e))
    return saved


def best_problem(record, run):
    """None when best.json's ``record`` is consistent, else '<path>: <field> ...' saying what is wrong.

    Checks: an object; step a positive int whose best/ checkpoint really loads;
    validation_accuracy in [0, 1]; validation_loss a finite number.
    """
    from resnet_graph.training.run_dir import BEST, CHECKPOINT_PREFIX
    path = run.join(BEST)
    if not isinstance(record, dict):
        return '%s is damaged: a JSON %s, expected an object' % (path, type(record).__name__)
    step, accuracy, loss = record.get('step'), record.get('validation_accuracy'), record.get('validation_loss')
    if not _is_int(step) or step < 1:
        return '%s is damaged: step is %r, expected a positive step' % (path, step)
    if not _numbers(accuracy) or isinstance(accuracy, list) or not 0 <= accuracy <= 1:
        return '%s is damaged: validation_accuracy is %r, expected a number in [0, 1]' % (path, accuracy)
    if not _numbers(loss) or isinstance(loss, list):
        return '%s is damaged: validation_loss is %r, expected a finite number' % (path, loss)
    prefix = run.join('best', '%s-%d' % (CHECKPOINT_PREFIX, step))
    if prefix not in run.checkpoints(run.best_dir):
        return '%s: step %d has no loadable best checkpoint (%s)' % (path, step, prefix)
    return None
