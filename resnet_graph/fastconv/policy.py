"""ConvPolicy: which exact CPU-tuned form (forms.py) each convolution of a graph takes.

The command lines build one from config.py (``ConvPolicy.from_config``) and pass it to ``ResNet`` (its
``conv`` argument); ``nets.layers.conv2d`` asks it for a form and takes the plain Conv2D where it
answers None. The choice depends only on static shapes and the policy's fields, so one policy gives one graph.
"""
import tensorflow as tf

import config
from resnet_graph.fastconv import cpu, forms


class ConvPolicy(object):
    """The shape-aware convolution forms and where each applies.

    Args:
      small_map_positions: a convolution with at most this many output positions
        becomes patches of its live taps + one matrix multiply (a 3x3 on a 1x1 map
        is its centre tap; on 2x2 every output reads every input).
      forward_gradients: training graphs give stride-1 SAME convolutions the
        gradient ``forms._conv_grads_as_forward_convs``.
      whole_map_min_batch: a small map with fewer positions than live taps is one
        whole-map multiply (``forms._whole_map_conv``) only from this batch size up:
        its kernel-side work does not shrink with the batch, the patches' does.
      batch_size: the batch the graph will run, for inputs whose static batch
        dimension is unknown (None: unknown, and the whole-map form is taken).
    """

    def __init__(self, small_map_positions=config.SMALL_MAP_POSITIONS, forward_gradients=False,
                 whole_map_min_batch=config.WHOLE_MAP_MIN_BATCH, batch_size=None):
        self.small_map_positions = small_map_positions
        self.forward_gradients = forward_gradients
        self.whole_map_min_batch = whole_map_min_batch
        self.batch_size = batch_size

    @classmethod
    def from_config(cls, batch_size=None):
        """The policy config.py asks for on this CPU (``config.FORWARD_CONV_GRADIENTS``: 'auto' follows AVX-512),
        for graphs that run ``batch_size`` images at a time (None: unknown)."""
        return cls(config.SMALL_MAP_POSITIONS, cpu.enabled('FORWARD_CONV_GRADIENTS'), batch_size=batch_size)

    def _whole_map(self, x):
        """Whether a small map of ``x`` [N, H, W, C] may be one whole-map multiply (see whole_map_min_batch)."""
        batch = x.shape[0] if x.shape[0] is not None else self.batch_size
        return batch is None or batch >= self.whole_map_min_batch

    def conv(self, x, kernel, stride, pads, out_size, epilogue=None, inference=False):
        """The tuned form of one convolution, or None where the plain Conv2D is the one to take.

        Args:
          x: [N, H, W, C_in] of static H, W (unpadded).
          kernel: [k, k, C_in, C_out].
          stride: spatial stride s.
          pads: (top, bottom, left, right) padding of the convolution.
          out_size: (H_out, W_out).
          epilogue: None or a per-channel elementwise function applied to the result.
          inference: the graph never differentiates it: 1x1 convolutions on maps over
            ``small_map_positions`` then stay Conv2D, which Grappler fuses with what follows.
        Returns:
          [N, H_out, W_out, C_out] with the epilogue applied, or None.
        """
        k = kernel.shape[0]
        small_map = out_size[0] * out_size[1] <= self.small_map_positions
        few_rows = small_map and not inference  # the multiply has small_map_positions rows per image or fewer
        if k == 1 and (small_map or not inference):
            x = forms.strided_taps(x, [(0, 0)], stride, out_size)[0]
            return forms.matmul_nhwc(x, tf.reshape(kernel, kernel.shape[2:]), epilogue, few_rows)
        if small_map:
            return forms.patch_conv(x, kernel, stride, pads, out_size, epilogue, few_rows, self._whole_map(x))
        same = ((k - 1) // 2, k - 1 - (k - 1) // 2) * 2
        if stride == 1 and tuple(pads) == same and k % 2 and self.forward_gradients and not inference:
            return forms.then(forms.conv_same(x, kernel, forward_gradient=True), epilogue)
        return None
