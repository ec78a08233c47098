"""Fine-tuning: warm start from another run's checkpoint, frozen stages, and the log lines that say what happened.

- ``--warm_start_from`` initialises a fresh run through ``ResNet(weights=...,
  weights_exclude=...)`` (``tf.compat.v1.train.init_from_checkpoint``); a run that
  resumes restores its own checkpoint instead.
- ``--freeze_stages N`` leaves the stem and stages 1..N out of the optimizer's
  var_list (no gradient step, no optimizer slots) and drops their batch-norm
  update ops, so every variable there, moving statistics included, stays
  bitwise as loaded. Their batch norm still normalises with the batch's own
  statistics while training (the network's train/inference switch is global);
  evaluation uses the frozen moving statistics, as for any run.
"""
import re

from resnet_graph.nets.model import ResNet


class FineTuneError(ValueError):
    """A warm start or freeze that does not fit the network (missing checkpoint, variable or stage)."""


def build_model(cfg, warm_start_from='', **kwargs):
    """``ResNet.from_config(cfg, **kwargs)``, initialised from ``warm_start_from`` when given.

    Raises FineTuneError when the checkpoint is missing, lacks a variable or
    holds one with another shape (a head of another class count without
    ``--warm_start_exclude head/``).
    """
    if not warm_start_from:
        return ResNet.from_config(cfg, **kwargs)
    try:
        return ResNet.from_config(cfg, weights=warm_start_from, weights_exclude=cfg.warm_start_exclude, **kwargs)
    except ValueError as e:
        # The network's wording (weights=, weights_exclude=[...]) in the train command's flags.
        message = re.sub(r'weights_exclude=\["([^"]*)"\]', r'--warm_start_exclude \1', str(e))
        message = message.replace('weights_exclude=[...]', '--warm_start_exclude').replace(
            'weights=%s' % warm_start_from, warm_start_from)
        raise FineTuneError('cannot warm-start from %s: %s' % (warm_start_from, message))


def frozen_prefixes(freeze_stages):
    """The variable-name prefixes that ``--freeze_stages N`` freezes: stem/ and stage1/ .. stageN/."""
    if not freeze_stages:
        return ()
    return ('stem/',) + tuple('stage%d/' % (i + 1) for i in range(freeze_stages))


def split(model, freeze_stages):
    """Splits ``model``'s variables for training.

    Returns (the trainable variables to optimise, the frozen variables: every
    variable of the stem and the first ``freeze_stages`` stages, BN moving
    statistics included). Raises FineTuneError when the network has fewer stages.
    """
    stages = sum(1 for name in model.endpoints if re.match(r'stage\d+$', name))
    if freeze_stages > stages:
        raise FineTuneError('--freeze_stages %d but the network has %d stages' % (freeze_stages, stages))
    prefixes = frozen_prefixes(freeze_stages)
    net = getattr(model, 'towers', [model])[0]  # a Towers model: its first tower knows the layer names
    if getattr(net, '_official_names', None) is not None:  # official r1's tf.layers names: frozen by summary row
        from resnet_graph.nets import official
        rows = tuple(p.rstrip('/') for p in prefixes)
        frozen = [v for v in model.variables if official.row_of(net, model.local_name(v)) in rows]
    else:
        frozen = [v for v in model.variables if model.local_name(v).startswith(prefixes)] if prefixes else []
    frozen_names = {v.op.name for v in frozen}
    trained = [v for v in model.trainable_variables if v.op.name not in frozen_names]
    return trained, frozen


def update_ops(model, frozen):
    """``model.update_ops`` without those that update a frozen variable (its BN moving statistics)."""
    names = {v.op.name for v in frozen}
    return [u for u in model.update_ops if getattr(u, 'op', u).inputs[0].op.name not in names]


def _names(names, limit=3):
    shown = ', '.join(names[:limit])
    return shown + (', ... (%d more)' % (len(names) - limit) if len(names) > limit else '')


def describe(model, frozen):
    """Log lines: what the warm start restored and left fresh, and what is frozen (counts + a few names)."""
    lines = []
    report = model.weights_report
    if report:
        lines.append('warm start from %s: %d variables restored (%s); %d initialised fresh (%s)'
                     % (report['checkpoint'], len(report['restored']), _names(report['restored']),
                        len(report['fresh']), _names(report['fresh']) or 'none'))
    if frozen:
        names = [model.local_name(v) for v in frozen]
        lines.append('frozen: %d variables (%s) are not trained and their BN statistics stay'
                     % (len(names), _names(names)))
    return lines
