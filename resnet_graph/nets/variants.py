"""The architecture variants of ``ResNet``, resolved and checked without TensorFlow.

``resolve(depth, **options)`` turns the user's options (the keyword arguments
of ``ResNet`` and the train flags of the same names) into one ``Spec``: the
stage table, block widths and the switches the graph builder reads. The train
command calls it in ``validate()`` before TensorFlow loads, so a bad
combination costs no start-up time.

Variants:
  architecture  'imagenet': 7x7/2 stem + 3x3/2 max-pool, four stages 64..512
                (18, 34 basic blocks; 50, 101, 152 bottlenecks).
                'cifar': He et al. 2015 section 4.2, depth 6n+2: 3x3 stem of 16
                filters, three stages of n basic blocks, 16/32/64 filters, no max-pool.
                'auto': 'imagenet' for 18/34/50/101/152, 'cifar' for every other
                6n+2 depth (50 and 152 are 6n+2 too: ask for --architecture cifar).
  shortcut      'A': identity, strided subsample + zero channels where the shape
                changes (no parameters); 'B': 1x1 projection + BN where it changes;
                'auto': A for cifar (the paper's CIFAR table), B for imagenet.
  resnet_version 1: post-activation (conv-BN-ReLU); 2: pre-activation (He et
                al. 2016: BN-ReLU before each conv, the stem without BN, a final
                BN-ReLU before pooling).
  stride_in     bottleneck stride in the first '1x1' (v1, the paper, Keras) or
                in the '3x3' (v1.5, torchvision; the default).
  width_multiplier scales the blocks' inner width: both convs of a basic block
                (wide ResNets, Zagoruyko & Komodakis), the 1x1-3x3 of a
                bottleneck whose output stays 4x the base width (torchvision's
                wide_resnet50_2 is depth 50, multiplier 2). The stem keeps its width.
  no_residual   the plain network: the same convolutions without shortcuts.
  data_format   'NHWC' or 'NCHW' (inside the network; inputs stay NHWC; NCHW
                runs only on a GPU).
  variant       'standard' (resnet_graph's names and padding); 'keras' (the
                layout of keras.applications.ResNet50/101/152: conv biases, BN
                epsilon 1.001e-5, stride in the 1x1, zero-padded 7x7 and max-pool);
                'legacy' (the legacy trainer's graph and variable names);
                'slim_v1', 'slim_v2' (TF-Slim's resnet_v1_<depth> / resnet_v2_<depth>, their
                graphs and variable names: ``slim.py``; slim_v2 is pre-activation whatever
                resnet_version says); 'official_v1' / 'official_v2' (tensorflow/models
                official r1 ResNet v1.5 / v2 under its tf.layers names, nets/official.py;
                the variant sets resnet_version).
  output_stride None (32), or 4, 8, 16 with a slim variant: Slim's dense prediction (the
                later units run unstrided, their 3x3 atrous).
"""
import collections
import math

import config

IMAGENET_STAGES = {
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)
BOTTLENECK_EXPANSION = 4
MAX_CHANNELS = 1 << 16  # the widest layer a width_multiplier may make: one 3x3 kernel of it is 144 GiB in float32

ARCHITECTURES = ('auto', 'imagenet', 'cifar')
SHORTCUTS = ('auto', 'A', 'B')
VERSIONS = (1, 2)
STRIDE_IN = ('1x1', '3x3')
DATA_FORMATS = ('NHWC', 'NCHW')
SLIM_VARIANTS = ('slim_v1', 'slim_v2')
OFFICIAL = {'official_v1': 1, 'official_v2': 2}  # official r1's variants -> their resnet_version
VARIANTS = ('standard', 'keras', 'legacy') + SLIM_VARIANTS + tuple(OFFICIAL)
OUTPUT_STRIDES = (None, 4, 8, 16, 32)
# The classifier width of each family's published checkpoints (1001: class 0 is background); ResNet's
# num_classes defaults to it, so a network built to restore one fits it. The others: ResNet's own 10.
FAMILY_CLASSES = {'keras': 1000, 'slim_v1': 1000, 'slim_v2': 1001, 'official_v1': 1001, 'official_v2': 1001}
DEFAULT_CLASSES = 10
BN_EPSILON = {'standard': 1e-5, 'keras': 1.001e-5, 'legacy': 1e-3,  # ours; Keras's ResNets; tf.layers' default
              'slim_v1': 1e-5, 'slim_v2': 1e-5,  # slim's resnet_arg_scope
              'official_v1': 1e-5, 'official_v2': 1e-5}
CIFAR_RULE = '6n+2 (20, 32, 44, 56, 110, ...)'
DEPTH_RULE = '%s (ImageNet-style) or %s (CIFAR-style)' % (
    ', '.join(str(d) for d in sorted(IMAGENET_STAGES)), CIFAR_RULE)

# Defaults of the options; run directories written before the variants lack
# these keys and mean exactly these values.
DEFAULTS = {key: config.TRAIN[key] for key in ('architecture', 'shortcut', 'resnet_version', 'stride_in',
                                               'width_multiplier', 'no_residual', 'data_format', 'variant')}

Spec = collections.namedtuple('Spec', [
    'depth', 'architecture', 'block_kind', 'num_blocks', 'inner_widths', 'out_widths', 'stem_width', 'shortcut',
    'resnet_version', 'stride_in', 'width_multiplier', 'no_residual', 'data_format', 'variant',
    'conv_bias', 'bn_epsilon', 'output_stride'], defaults=(None,))


def is_cifar_depth(depth):
    return isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0


def _one_of(name, value, allowed):
    if value not in allowed:
        raise ValueError('%s=%r is not one of %s' % (name, value, ', '.join(map(repr, allowed))))


def resolve(depth, architecture='auto', shortcut='auto', resnet_version=1, stride_in='3x3', width_multiplier=1.0,
            no_residual=False, data_format='NHWC', variant='standard', output_stride=None):
    """Checks the options and returns the ``Spec`` of the network they describe.

    Raises ValueError naming the first bad option (and the valid values).
    """
    for name, value, allowed in (('architecture', architecture, ARCHITECTURES), ('shortcut', shortcut, SHORTCUTS),
                                 ('resnet_version', resnet_version, VERSIONS), ('stride_in', stride_in, STRIDE_IN),
                                 ('data_format', data_format, DATA_FORMATS), ('variant', variant, VARIANTS),
                                 ('output_stride', output_stride, OUTPUT_STRIDES)):
        _one_of(name, value, allowed)
    if output_stride is not None and variant not in SLIM_VARIANTS:
        raise ValueError('output_stride=%r needs variant slim_v1 or slim_v2 (Slim\'s dense prediction)'
                         % (output_stride,))
    if not width_multiplier > 0:
        raise ValueError('width_multiplier must be positive, got %r' % (width_multiplier,))
    if architecture == 'auto':
        if depth in IMAGENET_STAGES:
            architecture = 'imagenet'
        elif is_cifar_depth(depth):
            architecture = 'cifar'
        else:
            raise ValueError('depth %r is not supported; valid depths: %s' % (depth, DEPTH_RULE))
    if architecture == 'imagenet' and depth not in IMAGENET_STAGES:
        raise ValueError('depth %r is not an ImageNet-style ResNet; valid depths: %s (or architecture=cifar '
                         'for %s)' % (depth, ', '.join(str(d) for d in sorted(IMAGENET_STAGES)), CIFAR_RULE))
    if architecture == 'cifar' and not is_cifar_depth(depth):
        raise ValueError('depth %r is not a CIFAR-style ResNet depth; valid: %s, n >= 1 basic blocks per stage'
                         % (depth, CIFAR_RULE))
    if variant != 'standard':
        _check_variant(depth, variant, architecture, shortcut, resnet_version, width_multiplier, no_residual)
        shortcut, stride_in = 'B', '3x3' if variant in SLIM_VARIANTS or variant in OFFICIAL else '1x1'
        resnet_version = {'slim_v2': 2}.get(variant, OFFICIAL.get(variant, 1))
    if shortcut == 'auto':
        shortcut = 'A' if architecture == 'cifar' else 'B'
    if architecture == 'cifar':
        kind, blocks, base, expansion, stem = 'basic', ((depth - 2) // 6,) * 3, CIFAR_WIDTHS, 1, 16
    else:
        kind, blocks = IMAGENET_STAGES[depth]
        base, stem = IMAGENET_WIDTHS, 64
        expansion = BOTTLENECK_EXPANSION if kind == 'bottleneck' else 1
    _check_width(width_multiplier, base)
    inner = tuple(int(round(w * width_multiplier)) for w in base)
    out = tuple(w * expansion for w in base) if kind == 'bottleneck' else inner
    if shortcut == 'A' and out[0] < stem:
        raise ValueError('shortcut=A pads channels with zeros and cannot drop any: width_multiplier=%r makes the '
                         'first stage %d channels wide after a %d-channel stem; use shortcut=B or a multiplier >= 1'
                         % (width_multiplier, out[0], stem))
    return Spec(depth, architecture, kind, blocks, inner, out, stem, shortcut, resnet_version, stride_in,
                width_multiplier, bool(no_residual), data_format, variant,
                conv_bias=variant in ('keras', 'legacy', 'slim_v2'), bn_epsilon=BN_EPSILON[variant],
                output_stride=output_stride)


def _check_width(width_multiplier, base):
    """ValueError when ``width_multiplier`` makes a block of base widths ``base`` wider than MAX_CHANNELS (or is
    infinite): no run could hold it, and its channel count overflows what TensorFlow and the estimates use."""
    widest = max(base) * width_multiplier
    if not (math.isfinite(widest) and int(round(widest)) <= MAX_CHANNELS):
        raise ValueError('width_multiplier=%g makes the widest layer %g channels, over the %d a layer may have; give '
                         'width_multiplier at most %g for this network'
                         % (width_multiplier, widest, MAX_CHANNELS, MAX_CHANNELS / max(base)))


def _check_variant(depth, variant, architecture, shortcut, resnet_version, width_multiplier, no_residual):
    what = {'keras': 'keras.applications', 'legacy': 'the legacy trainer', 'slim_v1': "TF-Slim's resnet_v1",
            'slim_v2': "TF-Slim's resnet_v2", 'official_v1': 'official r1 v1.5', 'official_v2': 'official r1 v2'}[variant]
    if resnet_version != 1 and variant != 'slim_v2' and variant not in OFFICIAL:
        raise ValueError('resnet_version=%r cannot be combined with variant=%s: %s builds v1 ResNets only'
                         % (resnet_version, variant, what))
    if variant in OFFICIAL and resnet_version not in (1, OFFICIAL[variant]):
        raise ValueError('resnet_version=%r cannot be combined with variant=%s: the variant is version %d'
                         % (resnet_version, variant, OFFICIAL[variant]))
    if architecture != 'imagenet':
        raise ValueError('architecture=%s cannot be combined with variant=%s: %s has ImageNet-style ResNets only'
                         % (architecture, variant, what))
    if variant == 'keras' and depth not in (50, 101, 152):
        raise ValueError('variant=keras has depths 50, 101, 152 (keras.applications.ResNet50/101/152), got %r' % depth)
    if variant in SLIM_VARIANTS and depth not in (50, 101, 152):
        raise ValueError('variant=%s has depths 50, 101, 152 (%s_50/101/152), got %r'
                         % (variant, variant.replace('slim', 'resnet'), depth))
    if shortcut == 'A' or width_multiplier != 1 or no_residual:
        raise ValueError('variant=%s reproduces %s exactly: shortcut A, width_multiplier and no_residual do not '
                         'apply' % (variant, what))


def default_classes(variant):
    """The classifier width ``ResNet(variant=...)`` takes when num_classes is not given (an int)."""
    return FAMILY_CLASSES.get(variant, DEFAULT_CLASSES)


def from_config(cfg):
    """The variant options (a dict, the keys of ``DEFAULTS``) of a run's configuration (a config.RunConfig)."""
    return {key: getattr(cfg, key) for key in DEFAULTS}
