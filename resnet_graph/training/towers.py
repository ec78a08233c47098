"""Several devices of one machine: one tower per device, shared variables, averaged gradients.

``--num_devices N`` (or ``--devices /gpu:0,/gpu:1``) builds N copies ("towers")
of the network in one graph, each on its own device and all on the same
variables, which live on the parameter device (``/cpu:0``). Each batch is
split into N equal parts, one per tower; each tower differentiates its own
loss on its own device, and the N gradients are averaged on the parameter
device and applied once. The batch-norm moving statistics are updated from
the first tower's batch (as TF1's multi-tower examples do). In training mode
each tower normalises with its own part of the batch, or with ``--sync_bn``
with the statistics of the whole batch: each batch norm sums its per-channel
sums across the towers with a collective all-reduce (``CrossTowerSum``,
whose gradient is the all-reduce of the gradients), so the towers compute
what one device computes on the whole batch.

Devices: ``--devices`` names them; ``--num_devices N`` takes the first N
GPUs when the machine has at least N, else N CPU devices. CPU devices beyond
the first are virtual: the session is created with ``device_count={'CPU': N}``
(TensorFlow's own way of splitting one CPU into several devices), so the
same command runs, and is tested, on a CPU-only machine.
"""
import tensorflow as tf

import config
from resnet_graph.training import finetune
from resnet_graph.errors import UsageError
from resnet_graph.fastconv.policy import ConvPolicy
from resnet_graph.training.tf_config import DEVICE_PATTERN
from resnet_graph.nets.model import classifier_outputs

v1 = tf.compat.v1

PARAMETER_DEVICE = '/cpu:0'
# Op types that hold state: they stay on the parameter device, whichever tower builds them.
_STATE_OPS = ('Variable', 'VariableV2', 'VarHandleOp')


def tower_devices(cfg):
    """The towers' device names from ``cfg`` (devices, num_devices): a list, empty for one device.

    Raises UsageError when --num_devices asks for more GPUs than the machine has (and it has some).
    """
    devices = [d.lower() for d in cfg.devices]
    if devices:
        return devices
    count = cfg.num_devices
    if count <= 1:
        return []
    gpus = len(tf.config.list_physical_devices('GPU'))
    if gpus and gpus < count:
        raise UsageError('--num_devices %d but this machine has %d GPUs; use --num_devices %d or name the devices '
                         'with --devices' % (count, gpus, gpus))
    return ['/%s:%d' % ('gpu' if gpus else 'cpu', i) for i in range(count)]


def session_config(cfg):
    """A ConfigProto giving the session the CPU devices the towers name, or None for one device."""
    devices = tower_devices(cfg)
    if not devices:
        return None
    cpus = max([int(DEVICE_PATTERN.match(d).group(2)) + 1 for d in devices if d.startswith('/cpu')] + [1])
    return v1.ConfigProto(device_count={'CPU': cpus}, allow_soft_placement=True)


def _placer(device):
    """A device function: state ops on the parameter device, every other op on ``device``."""
    def place(op):
        return PARAMETER_DEVICE if op.type in _STATE_OPS else device
    return place


def build_model(cfg, warm_start_from, images, labels):
    """The trainer's network: ``finetune.build_model`` for one device, else ``Towers``.

    Args:
      images: float32 [B, S, S, C] (B divisible by the number of towers); labels: int64 [B].
    """
    devices = tower_devices(cfg)
    conv = cfg.conv
    if conv == 'shape_aware':  # the forms may depend on the batch, which the pipeline's shape leaves open
        conv = ConvPolicy.from_config(batch_size=max(1, cfg.batch_size // max(1, len(devices))))
    if not devices:
        return finetune.build_model(cfg, warm_start_from, input_tensor=images, label_tensor=labels, conv=conv)
    return Towers(cfg, devices, images, labels, warm_start_from, conv)


def gradients(model, label_smoothing):
    """For ``optim.train_op(gradients=...)``: the towers' averaged gradients, or None for one network."""
    if not isinstance(model, Towers):
        return None
    return lambda var_list: model.average_gradients(var_list, label_smoothing)


class Towers(object):
    """N ResNet towers on shared variables, seen by the trainer as one network.

    ``input_x`` / ``input_y`` are the whole batch; tower i takes rows
    [i * n // N, (i + 1) * n // N), so a fed validation batch of any size is
    split too. ``logits`` [n, K] concatenates the towers' logits on the
    parameter device, and the metrics (loss, accuracy, ...) are computed from
    them exactly as ``ResNet`` does: the loss is the whole batch's. Other
    attributes (variables, update_ops of the first tower, endpoints, ...) are
    the first tower's.
    """

    def __init__(self, cfg, devices, images, labels, warm_start_from='', conv='shape_aware'):
        self.devices = list(devices)
        self.input_x, self.input_y = images, tf.cast(labels, tf.int64)
        self.is_training = v1.placeholder_with_default(False, [], name='is_training')
        count = tf.shape(images)[0]
        self.cross_tower_sum = CrossTowerSum(len(self.devices)) if cfg.sync_bn else None
        self.towers = []
        for i, device in enumerate(self.devices):
            with tf.name_scope('tower%d' % i), v1.device(_placer(device)):
                start, end = count * i // len(devices), count * (i + 1) // len(devices)
                kwargs = dict(input_tensor=images[start:end], label_tensor=self.input_y[start:end],
                              training=self.is_training, reuse=True if i else None,
                              cross_replica_sum=self.cross_tower_sum, conv=conv)
                self.towers.append(finetune.build_model(cfg, '' if i else warm_start_from, **kwargs))
        first = self.towers[0]
        for name in self.FROM_FIRST_TOWER:
            setattr(self, name, getattr(first, name))
        with tf.device(PARAMETER_DEVICE):
            self.logits = tf.concat([t.logits for t in self.towers], 0, name='logits')
            for name, tensor in classifier_outputs(self.logits, self.input_y, self.regularization_loss,
                                                   self.num_classes).items():
                setattr(self, name, tensor)

    # What the towers share with their first tower (the variables are one set; its BN updates stand for all).
    FROM_FIRST_TOWER = ('num_classes', 'regularization_loss', 'variables', 'trainable_variables', 'decayed_kernels',
                        'update_ops', 'weight_decay', 'weights_report', 'endpoints', 'scope', 'spec', 'depth',
                        'local_name', 'num_params')

    def average_gradients(self, var_list=None, label_smoothing=config.TRAIN['label_smoothing']):
        """Each tower's gradients on its device, averaged on the parameter device.

        Returns a list of (gradient or None, variable) over ``var_list`` (default:
        the trainable variables), as ``Optimizer.compute_gradients`` does.
        """
        from resnet_graph.training import optim
        var_list = list(var_list if var_list is not None else self.towers[0].trainable_variables)
        per_tower = []
        for i, (tower, device) in enumerate(zip(self.towers, self.devices)):
            with tf.name_scope('tower%d_gradients' % i), tf.device(device):
                loss = optim.training_loss(tower, label_smoothing)
                per_tower.append(v1.gradients(loss, var_list, colocate_gradients_with_ops=True))
        averaged = []
        with tf.device(PARAMETER_DEVICE), tf.name_scope('average_gradients'):
            for variable, grads in zip(var_list, zip(*per_tower)):
                grads = [g for g in grads if g is not None]
                averaged.append((tf.add_n(grads) / float(len(grads)) if grads else None, variable))
        return averaged


class CrossTowerSum(object):
    """Sums a tensor over the towers: one collective all-reduce per call, run by every tower.

    Called once per tower with the same ``key`` (built from names the towers
    share), each call on its tower's device; the calls with one key form one
    all-reduce. Its gradient is the all-reduce of the towers' gradients, so
    each tower's backward pass gets the whole batch's gradient through the
    shared statistics (the towers' gradients must be computed in the same
    session run, with ``colocate_gradients_with_ops``, as ``average_gradients`` does).
    """

    GROUP_KEY = 1

    def __init__(self, num_towers):
        self.num_towers = num_towers
        self.instance_keys = {}

    def _instance_key(self, key):
        return self.instance_keys.setdefault(key, len(self.instance_keys) + 1)

    def _all_reduce(self, tensor, key):
        return tf.raw_ops.CollectiveReduce(input=tensor, group_size=self.num_towers, group_key=self.GROUP_KEY,
                                           instance_key=self._instance_key(key), merge_op='Add', final_op='Id',
                                           subdiv_offsets=[0])

    def __call__(self, tensor, key):
        """tensor [D] (this tower's part) -> [D], the sum over every tower."""
        @tf.custom_gradient
        def summed(t):
            return self._all_reduce(t, key), lambda dy: self._all_reduce(dy, key + '/gradient')
        return summed(tensor)


def describe(model, batch_size):
    """Log lines: the towers and their share of the batch (none for one device)."""
    if not isinstance(model, Towers):
        return []
    statistics = ('synchronised across the towers' if model.cross_tower_sum is not None
                  else 'each tower\'s own, moving averages from the first tower')
    return ['towers: %d on %s (batch %d split %d per tower); BN statistics %s'
            % (len(model.devices), ', '.join(model.devices), batch_size, batch_size // len(model.devices), statistics)]
