"""Every default of resnet_graph, in one place.

``RunConfig`` holds the train command's defaults, field by field; ``TRAIN`` is
the same values as a dict. The command-line flags (``resnet_graph/flags.py``)
take their defaults from ``TRAIN``; the legacy names (``config.height``,
``resnet_config.depth``, ...) stay readable for old scripts. The training defaults were chosen on the
validation split of the embedded digits set (never on its test split); the
README says how.
"""
import dataclasses
import types
from typing import List, Optional, Union

# Image geometry and classes of the embedded default data set (digits).
height = 32
width = 32
channel = 1
num_classes = 10


def _empty():
    """A field whose default is a fresh empty list."""
    return dataclasses.field(default_factory=list)


def _record(default=None):
    """A field the run records in config.json beside the flags' values (absent from ``TRAIN`` and the flags)."""
    return dataclasses.field(default=default, metadata={'record': True})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A run's configuration: the train flags' values and what the run learns from its data.

    Constructors: ``RunConfig()`` / ``RunConfig.defaults(**overrides)`` (this file's defaults),
    ``from_flags`` (the parsed train flags), ``from_json`` (a run's config.json, checked by
    ``resnet_graph.training.records.check_config`` first). ``to_json`` writes config.json back, key for key.
    Change a value with ``dataclasses.replace``.
    """
    depth: int = 50
    dataset: Optional[str] = 'digits'
    data_dir: str = ''
    model_dir: str = ''             # empty: runs/resnet<depth>
    image_size: int = height
    batch_size: int = 64
    epochs: int = 12
    max_steps: int = 0              # 0: epochs decide the number of steps
    learning_rate: float = 2e-3
    learning_decay_rate: float = 0.5
    learning_decay_steps: int = 60
    weight_decay: float = 1e-4
    bn_momentum: float = 0.9
    eval_every: int = 0             # 0: once per epoch
    log_every: int = 10
    histogram_every: int = 0        # 0: no weight histograms
    trace_step: int = -1            # -1: no Chrome trace
    max_to_keep: int = 5
    seed: int = 0
    conv: str = 'shape_aware'       # the exact CPU-tuned forms of resnet_graph/fastconv, or plain: TensorFlow's Conv2D
    nan_policy: str = 'stop'        # stop: end the run at a NaN/Inf loss; skip: skip that update and go on
    dtype: str = 'float32'          # compute dtype of convs/dense: float32, bfloat16, float16 (variables stay float32)
    # Data sources (resnet_graph/data/): split, channels, augmentation, bad files, download.
    validation_fraction: float = 0.1  # of each class of the training files (sets without a fixed split)
    split_seed: int = 20240601      # the split's own seed, stored with the run so a resume keeps the split
    channels: int = 0               # 0: the data's own; 1, 3, 4: convert gray <-> RGB, drop or add alpha
    augment: str = 'none'           # none, cifar (pad-4 crop + flip), imagenet (random-resized crop + flip)
    strict_data: bool = False       # a corrupt image is an error instead of being skipped
    download: bool = False          # fetch mnist / fashion_mnist / cifar10 / cifar100 when missing
    max_image_pixels: int = 40000000  # an image file whose header says more is refused before decoding
    data_roots: List[str] = _empty()  # directories a CSV manifest's paths may point into besides its own
    # Training recipe (resnet_graph/training/optim.py, schedules.py): optimizer, schedule, regularisers.
    optimizer: str = 'adam'         # adam (legacy), momentum, adamw
    momentum: float = 0.9           # of --optimizer momentum
    nesterov: bool = False          # Nesterov momentum (needs --optimizer momentum)
    adamw_weight_decay: float = 0.01  # decoupled decay of --optimizer adamw: kernel -= lr * this * kernel per step
    schedule: str = 'exponential'   # exponential (legacy), piecewise, cosine
    boundaries_epochs: List[float] = _empty()  # piecewise: epochs where the rate changes, e.g. 91,136
    lr_values: List[float] = _empty()  # piecewise: one rate per piece; empty: learning_rate * learning_decay_rate ** i
    warmup_epochs: float = 0.0      # linear warm-up over this many epochs, for any schedule
    label_smoothing: float = 0.0
    clip_gradient_norm: float = 0.0  # 0: no clipping
    # Fine-tuning (resnet_graph/training/finetune.py): only when the run starts fresh.
    warm_start_from: str = ''       # a run directory or checkpoint to initialise from
    warm_start_exclude: List[str] = _empty()  # regexes of variable names left freshly initialised, e.g. head/
    freeze_stages: int = 0          # stem + the first N stages are not trained
    # Architecture variants (resnet_graph/nets/variants.py); they change the graph's variables.
    architecture: str = 'auto'      # imagenet, cifar (depth 6n+2), auto: imagenet for 18/34/50/101/152, else cifar
    shortcut: str = 'auto'          # A (identity + zero channels), B (projection); auto: A for cifar, B for imagenet
    resnet_version: int = 1         # 1: post-activation; 2: pre-activation (He et al. 2016)
    stride_in: str = '3x3'          # bottleneck stride in the 3x3 (v1.5) or the first 1x1 (v1)
    width_multiplier: float = 1.0   # scales the blocks' inner widths (wide ResNets)
    no_residual: bool = False       # the plain network: no shortcut additions
    data_format: str = 'NHWC'       # NCHW needs a GPU
    variant: str = 'standard'       # standard, keras (keras.applications layout), legacy (the legacy trainer's graph)
    # Scaling out (resnet_graph/training/towers.py, training/distributed.py, cluster.py); the cluster itself comes from TF_CONFIG.
    num_devices: int = 1            # towers on this machine: the first N GPUs, else N (virtual) CPU devices
    devices: List[str] = _empty()    # the towers' devices by name, e.g. /gpu:0,/gpu:1 (overrides num_devices)
    sync_bn: bool = False           # towers: batch norm with the whole batch's statistics (all-reduced across towers)
    ps_strategy: str = 'by_size'    # TF_CONFIG cluster: variables to the ps task with the fewest bytes, or round_robin
    sync_replicas: bool = False     # TF_CONFIG cluster: synchronous updates (SyncReplicasOptimizer); default async
    # What the run learns from its data (trainer.Trainer) or an import records; None until known.
    num_classes: Optional[int] = _record()
    mean: Optional[Union[float, List[float]]] = _record()  # per-channel normalisation (scaled to [0, 1])
    std: Optional[Union[float, List[float]]] = _record()
    class_names: Optional[List[str]] = _record()  # an imported run's (a trained run's come from its data set)
    preprocessing: Optional[str] = _record()  # an imported run's family preprocessing: caffe, vgg, inception
    imported: Optional[dict] = _record()  # an imported run's origin: family, source
    # Keys of a config.json that this version does not know, written back unchanged.
    extra: dict = dataclasses.field(default_factory=dict, metadata={'record': True})

    @classmethod
    def defaults(cls, **overrides):
        """This file's defaults with ``overrides`` (field name -> value); TypeError for an unknown name."""
        return cls(**overrides)

    @classmethod
    def from_flags(cls, flag_values, **overrides):
        """The train flags' values (``flag_values[name].value`` for every name of ``TRAIN``) with ``overrides``."""
        return cls(**dict({name: flag_values[name].value for name in TRAIN}, **overrides))

    @classmethod
    def from_json(cls, saved):
        """A config.json's object (a dict) -> RunConfig; keys it lacks (runs saved before they existed) take
        the defaults, keys this version does not know go to ``extra``."""
        known = {name for name in FIELDS if name != 'extra'}
        return cls(extra={k: v for k, v in saved.items() if k not in known},
                   **{k: v for k, v in saved.items() if k in known})

    def to_json(self):
        """The config.json object: every flag's value, the recorded values that are known, and ``extra``."""
        record = {name: getattr(self, name) for name in FIELDS if name != 'extra'}
        record = {k: v for k, v in record.items() if k in TRAIN or v is not None}
        return dict(self.extra, **record)

    def replace(self, **changes):
        """A copy with ``changes`` (field name -> value)."""
        return dataclasses.replace(self, **changes)


FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
# Every train flag's default (the fields that are not recorded from the data), for the flags and old scripts.
TRAIN = {f.name: getattr(RunConfig(), f.name) for f in dataclasses.fields(RunConfig) if 'record' not in f.metadata}

# The other commands' flag defaults, by the flags.py group (``define_<group>``) that defines them; a flag of theirs
# that is not here has no default (None: required, or the run's own). restore: evaluate's, predict's and export's.
COMMANDS = dict(
    restore=dict(checkpoint='best', json=False),
    evaluate=dict(split='test', data_dir=''),
    predict=dict(top_k=3),
    plot=dict(out='curves.png'),
    summary=dict(depth=50, image_size=224, channels=3, num_classes=1000, json=False),  # ImageNet's ResNet-50
    benchmark=dict(depth=50, image_size=32, batch_size=128, channels=3, num_classes=10, mode='train',
                   data='synthetic', dataset=TRAIN['dataset'], data_dir=TRAIN['data_dir'], steps=10, warmup=3,
                   repeats=1, compare='', xla='off', json=False),
    import_keras=dict(image_size=224),
    import_checkpoint=dict(depth=50, image_size=224, moving_averages=False),
    cluster=dict(ps=1, workers=2, grace_secs=30.0),
)

EVAL_BATCH_SIZE = 128
# evaluate --json includes the confusion matrix for networks of up to this many classes (CIFAR-100's 100 fit);
# a 1000-class one would be a million numbers, so it needs --confusion.
CONFUSION_MAX_CLASSES = 100

# The dtypes --dtype accepts (layers.cast_to computes convolutions and the dense layer in them).
COMPUTE_DTYPES = ('float32', 'bfloat16', 'float16')

# Batch norm folded into the convolution before it in inference graphs (layers.conv2d_bn_folded,
# docs/performance.md): 'frozen' only where the weights become constants (export --format frozen_graph), so it is
# folded once; 'on' also in session graphs (evaluate, predict, SavedModel, benchmark --mode infer), which
# then rescale the kernels at every run: faster at large images and batches, slower at small ones; 'off'.
FOLD_BN = 'frozen'

# TensorFlow's pooling (BFC) CPU allocator for the command lines (cli.run sets TF_CPU_ALLOCATOR_USE_BFC unless
# the environment already has it): 'auto' where the CPU lacks AVX-512, 'on', 'off' (TensorFlow's default, which
# takes each tensor from malloc). It pays without AVX-512 and costs resident memory with it (docs/performance.md).
CPU_BFC_ALLOCATOR = 'auto'

# The CPU-tuned convolution forms (resnet_graph/fastconv, --conv shape_aware): a convolution with at most this
# many output positions is patches of its live taps + one matrix multiply.
SMALL_MAP_POSITIONS = 4

# Of those, a map with fewer positions than its kernel's live taps (a 3x3 on 2x2) is one whole-map multiply from
# this batch size up, patches below it (fastconv.ConvPolicy; the train command passes its batch size).
WHOLE_MAP_MIN_BATCH = 32

# Training gradients of stride-1 convolutions as forward convolutions (fastconv.forms._conv_grads_as_forward_convs):
# 'auto' where the CPU lacks AVX-512 (resnet_graph.fastconv.cpu), 'on', 'off' (TensorFlow's Conv2DBackpropInput /
# Conv2DBackpropFilter), which are the faster ones on AVX-512 CPUs (docs/performance.md).
FORWARD_CONV_GRADIENTS = 'auto'

# TF-Slim's and official r1's batch-norm decay: an imported run of those families records it as its bn_momentum,
# and ResNet(variant='official_v1' / 'official_v2') takes it when bn_momentum is not given.
CHECKPOINT_BN_MOMENTUM = 0.997

# Fixed, stratified split of the embedded digits (fractions of each class).
DIGITS_SPLIT = dict(validation=0.15, test=0.15, seed=20240601)

# The legacy trainer's ``resnet_config`` object, kept for old scripts.
resnet_config = types.SimpleNamespace(
    depth=TRAIN['depth'],
    learning_rate=TRAIN['learning_rate'],
    learning_decay_rate=TRAIN['learning_decay_rate'],
    learning_decay_steps=TRAIN['learning_decay_steps'],
    epoch=TRAIN['epochs'],
    batch_size=TRAIN['batch_size'],
    model_path='runs/resnet%d' % TRAIN['depth'],
    summary_path='runs/resnet%d/train' % TRAIN['depth'],
)
