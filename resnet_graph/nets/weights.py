"""``ResNet(weights=...)``: initialise a network's variables from a run directory or a checkpoint, by name."""
import os
import re

import tensorflow as tf

v1 = tf.compat.v1


def init_from(variables, weights, exclude, num_classes, head=()):
    """Makes the initializers of ``variables`` read their values from ``weights``.

    Args:
      variables: dict local name (as in the checkpoint) -> variable, in creation order.
      weights: a run directory (its best checkpoint, else its latest) or a checkpoint prefix.
      exclude: regular expressions of names that keep their fresh initialisers.
      num_classes: the network's, named in the error for a mis-shaped head.
      head: the local names of the classifier's variables (the error's hint differs for them).
    Returns:
      dict(checkpoint=prefix, restored=[names], fresh=[names]).
    Raises:
      ValueError naming the first variable the checkpoint lacks or holds with another shape.
    """
    path = checkpoint_path(weights)
    saved = dict(v1.train.list_variables(path))
    restored, fresh, mapping = [], [], {}
    for index, (name, variable) in enumerate(variables.items()):
        if any(re.search(p, name) for p in exclude):
            fresh.append(name)
            continue
        if name not in saved:
            raise ValueError('weights=%s has no variable %s; pass weights_exclude=[...] for layers it '
                             'does not hold' % (weights, name))
        if list(saved[name]) != variable.shape.as_list():
            raise ValueError('weights=%s holds %s with shape %s, the network has %s%s'
                             % (weights, name, saved[name], variable.shape.as_list(),
                                _mismatch_hint(name, saved[name], variable, index, num_classes, head)))
        mapping[name] = variable
        restored.append(name)
    v1.train.init_from_checkpoint(path, mapping)
    return dict(checkpoint=path, restored=restored, fresh=fresh)


def _mismatch_hint(name, saved_shape, variable, index, num_classes, head):
    """What a mis-shaped variable most likely means: another class count, input channels, or network."""
    if name in head:
        scope = 'head/' if name.startswith('head/') else name.rsplit('/', 2)[-2] + '/'  # ours, dense/, logits/
        return (' (classes=%s?); exclude it with weights_exclude=["%s"] to train a new head'
                % (num_classes, scope))
    shape = variable.shape.as_list()
    if index == 0 and len(shape) == 4 and list(saved_shape[:2] + saved_shape[3:]) == shape[:2] + shape[3:]:
        return (' (its network takes %d input channels, this one %d: give the run --channels %d)'
                % (saved_shape[2], shape[2], saved_shape[2]))
    return ' (another variant or depth?)'


def checkpoint_path(weights):
    """A run directory (its best checkpoint, else its latest), a checkpoint prefix or a V1 checkpoint file (TF-Slim's
    model zoo) -> what TensorFlow reads.

    ValueError where it holds no checkpoint, or the checkpoint cannot be read whole.
    """
    from resnet_graph.training.run_dir import RunDir, checkpoint_problem
    if os.path.isdir(weights):
        run = RunDir(weights, writable=False)  # another run: read, never repaired
        path = run.best_checkpoint() or run.latest_checkpoint()
        if path is None:
            raise ValueError('weights=%s is a directory without loadable checkpoints' % weights)
        return path
    if not (tf.io.gfile.exists(weights + '.index') or os.path.isfile(weights)):  # a V2 prefix or a V1 file
        raise ValueError('weights=%s is neither a run directory nor a checkpoint' % weights)
    problem = checkpoint_problem(weights)
    if problem:
        raise ValueError('checkpoint %s cannot be read: %s' % (weights, problem))
    return weights
