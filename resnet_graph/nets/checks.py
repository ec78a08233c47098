"""The checks of ``ResNet``'s arguments that need no graph: depth, compute dtype, convolution policy, data format.

Each raises ValueError naming the argument; the command lines turn it into one line (exit 2).
"""
import tensorflow as tf

from resnet_graph.nets import layers
from resnet_graph.nets import variants


def check_depth(depth, architecture='auto'):
    """Raises ValueError naming the valid depths when ``depth`` is not one of them."""
    variants.resolve(depth, architecture)


def compute_dtype(dtype):
    """'float32' | 'bfloat16' | 'float16' (or the tf.DType) -> the tf.DType; ValueError for any other."""
    name = getattr(dtype, 'name', dtype)
    if name not in layers.COMPUTE_DTYPES:
        raise ValueError('dtype=%r is not one of %s' % (dtype, ', '.join(layers.COMPUTE_DTYPES)))
    return tf.as_dtype(name)


def conv_policy(conv):
    """``ResNet``'s conv argument -> the ``fastconv.ConvPolicy`` its convolutions follow (None: plain Conv2D)."""
    if conv == 'plain':
        return None
    if conv == 'shape_aware':
        from resnet_graph.fastconv.policy import ConvPolicy
        return ConvPolicy.from_config()
    if hasattr(conv, 'conv'):
        return conv
    raise ValueError("conv=%r is not 'shape_aware', 'plain' or a fastconv.ConvPolicy" % (conv,))


def check_data_format(data_format):
    """Raises ValueError unless this machine can run ``data_format`` (NCHW convolutions need a GPU)."""
    if data_format == 'NCHW' and not tf.config.list_physical_devices('GPU'):
        raise ValueError('data_format=NCHW needs a GPU and this machine has none (TensorFlow runs NCHW '
                         'convolutions on GPUs only); use NHWC')
