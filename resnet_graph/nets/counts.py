"""A network's per-stage output shapes, parameters and multiply-adds, read from its built graph.

``summarize`` builds the network on a batch of one image with known shape (no training, no
data); parameters are its trainable variables (batch-norm moving statistics are counted
apart); multiply-adds are those of every convolution (output positions x k*k*C_in*C_out,
from the Conv2D ops' kernel and output shapes) and of the dense layer (D x classes). Batch
norm, ReLU, pooling, biases and the shortcut additions are not counted, as in the usual
figures. ``python -m resnet_graph.summary`` prints it as a table; the benchmark counts its FLOPs.
"""
import re

import config

DEFAULTS = config.COMMANDS['summary']  # the network summarize counts unless told: the summary command's
# The legacy variant's names -> the rows of the table.
_LEGACY_ROWS = ((r'First_Conv', 'stem'), (r'max_pool', 'stem'), (r'dense/', 'head'))
_SLIM_ROWS = {'conv1': 'stem', 'pool1': 'stem', 'postnorm': 'post_norm', 'logits': 'head', 'pool5': 'head'}


def row_of(name):
    """A variable or op name (no scope) -> its row: 'stem', 'stage<i>', 'post_norm', 'head' or None."""
    match = re.match(r'(stem|stage\d+|post_norm|head)/', name)
    if match:
        return match.group(1)
    match = re.match(r'resnet_v[12]_\d+/(conv1|pool1|block(\d+)|postnorm|logits|pool5)\b', name)  # Slim's
    if match:
        return _SLIM_ROWS.get(match.group(1)) or 'stage' + match.group(2)
    match = re.match(r'stack_(\d+)_', name)
    if match:
        return 'stage%d' % (int(match.group(1)) + 1)
    for pattern, row in _LEGACY_ROWS:
        if re.match(pattern, name):
            return row
    return None


def _macs(op):
    """Multiply-adds of a Conv2D or MatMul op with static shapes (batch of one)."""
    kernel = op.inputs[1].shape.as_list()
    output = op.outputs[0].shape.as_list()
    if op.type == 'MatMul':
        return kernel[0] * kernel[1]
    nchw = op.get_attr('data_format') == b'NCHW'
    positions = output[2] * output[3] if nchw else output[1] * output[2]
    return positions * kernel[0] * kernel[1] * kernel[2] * kernel[3]


def summarize(depth, image_size=DEFAULTS['image_size'], channels=DEFAULTS['channels'],
              num_classes=DEFAULTS['num_classes'], **options):
    """Builds the network in its own graph and counts.

    Args:
      depth, num_classes: as for ``ResNet``; image_size: side of the square input;
      channels: input channels; options: the variant keyword arguments of ``ResNet``.
    Returns:
      dict: rows (list of dicts name, output_shape [h, w, c] or [classes] (NCHW: [c, h, w]),
      params, macs), params (trainable total), non_trainable (BN moving statistics),
      macs (total), spec (the resolved variant options).
    """
    import tensorflow as tf
    from resnet_graph.nets.model import ResNet
    graph = tf.Graph()
    with graph.as_default():
        images = tf.zeros([1, image_size, image_size, channels])
        # conv='plain': every convolution is one Conv2D op whose shapes give its multiply-adds.
        model = ResNet(depth, num_classes, input_tensor=images, training=False, conv='plain', **options)
    names = list(model.endpoints) + (['post_norm'] if model.spec.resnet_version == 2 else []) + ['head']
    rows = {name: dict(name=name, output_shape=None, params=0, macs=0) for name in names}
    for name, tensor in model.endpoints.items():
        rows[name]['output_shape'] = tensor.shape.as_list()[1:]
    rows['head']['output_shape'] = model.logits.shape.as_list()[1:]
    if 'post_norm' in rows:
        rows['post_norm']['output_shape'] = rows['stage%d' % len(model.num_blocks)]['output_shape']
    from resnet_graph.nets import official

    def row(name):
        return row_of(name) or official.row_of(model, name)
    for variable in model.trainable_variables:
        rows[row(model.local_name(variable))]['params'] += variable.shape.num_elements()
    for op in graph.get_operations():
        if op.type in ('Conv2D', 'MatMul'):
            rows[row(op.name)]['macs'] += _macs(op)
    table = [rows[name] for name in names]
    non_trainable = sum(v.shape.num_elements() for v in model.variables if not v.trainable)
    return dict(rows=table, params=sum(r['params'] for r in table), non_trainable=non_trainable,
                macs=sum(r['macs'] for r in table), spec=model.spec._asdict())
