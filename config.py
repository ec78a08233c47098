"""Every default of resnet_graph, in one place.

The command-line flags (``resnet_graph/flags.py``) take their defaults from
``TRAIN``; the legacy names (``config.height``, ``resnet_config.depth``, ...)
stay readable for old scripts. The training defaults were chosen on the
validation split of the embedded digits set (never on its test split); the
README says how.
"""
import types

# Image geometry and classes of the embedded default data set (digits).
height = 32
width = 32
channel = 1
num_classes = 10

TRAIN = dict(
    depth=50,
    dataset='digits',
    data_dir='',
    model_dir='',            # empty: runs/resnet<depth>
    image_size=height,
    batch_size=64,
    epochs=12,
    max_steps=0,             # 0: epochs decide the number of steps
    learning_rate=2e-3,
    learning_decay_rate=0.5,
    learning_decay_steps=60,
    weight_decay=1e-4,
    bn_momentum=0.9,
    eval_every=0,            # 0: once per epoch
    log_every=10,
    histogram_every=0,       # 0: no weight histograms
    trace_step=-1,           # -1: no Chrome trace
    max_to_keep=5,
    seed=0,
    conv='shape_aware',      # the exact CPU-tuned forms of resnet_graph/fastconv, or plain: TensorFlow's Conv2D
    nan_policy='stop',       # stop: end the run at a NaN/Inf loss; skip: skip that update and go on
    dtype='float32',         # compute dtype of convs/dense: float32, bfloat16, float16 (variables stay float32)
    # Data sources (resnet_graph/data/): split, channels, augmentation, bad files, download.
    validation_fraction=0.1,  # of each class of the training files (sets without a fixed split)
    split_seed=20240601,      # the split's own seed, stored with the run so a resume keeps the split
    channels=0,               # 0: the data's own; 1, 3, 4: convert gray <-> RGB, drop or add alpha
    augment='none',           # none, cifar (pad-4 crop + flip), imagenet (random-resized crop + flip)
    strict_data=False,        # a corrupt image is an error instead of being skipped
    download=False,           # fetch mnist / fashion_mnist / cifar10 / cifar100 when missing
    max_image_pixels=40000000,  # an image file whose header says more is refused before decoding
    data_roots=[],            # directories a CSV manifest's paths may point into besides the manifest's own
    # Training recipe (resnet_graph/optim.py): optimizer, schedule, regularisers.
    optimizer='adam',         # adam (legacy), momentum, adamw
    momentum=0.9,             # of --optimizer momentum
    nesterov=False,           # Nesterov momentum (needs --optimizer momentum)
    adamw_weight_decay=0.01,  # decoupled decay of --optimizer adamw: kernel -= lr * this * kernel per step
    schedule='exponential',   # exponential (legacy), piecewise, cosine
    boundaries_epochs=[],     # piecewise: epochs where the rate changes, e.g. 91,136
    lr_values=[],             # piecewise: one rate per piece; empty: learning_rate * learning_decay_rate ** i
    warmup_epochs=0.0,        # linear warm-up over this many epochs, for any schedule
    label_smoothing=0.0,
    clip_gradient_norm=0.0,   # 0: no clipping
    # Fine-tuning (resnet_graph/finetune.py): only when the run starts fresh.
    warm_start_from='',       # a run directory or checkpoint to initialise from
    warm_start_exclude=[],    # regexes of variable names left freshly initialised, e.g. head/
    freeze_stages=0,          # stem + the first N stages are not trained
    # Architecture variants (resnet_graph/variants.py); they change the graph's variables.
    architecture='auto',      # imagenet, cifar (depth 6n+2), auto: imagenet for 18/34/50/101/152, else cifar
    shortcut='auto',          # A (identity + zero channels), B (projection); auto: A for cifar, B for imagenet
    resnet_version=1,         # 1: post-activation; 2: pre-activation (He et al. 2016)
    stride_in='3x3',          # bottleneck stride in the 3x3 (v1.5) or the first 1x1 (v1)
    width_multiplier=1.0,     # scales the blocks' inner widths (wide ResNets)
    no_residual=False,        # the plain network: no shortcut additions
    data_format='NHWC',       # NCHW needs a GPU
    variant='standard',       # standard, keras (keras.applications layout), legacy (the legacy trainer's graph)
    # Scaling out (resnet_graph/towers.py, distributed.py, cluster.py); the cluster itself comes from TF_CONFIG.
    num_devices=1,            # towers on this machine: the first N GPUs, else N (virtual) CPU devices
    devices=[],               # the towers' devices by name, e.g. /gpu:0,/gpu:1 (overrides num_devices)
    sync_bn=False,            # towers: batch norm with the statistics of the whole batch (all-reduced across towers)
    ps_strategy='by_size',    # in a TF_CONFIG cluster: variables to the ps task with the fewest bytes, or round_robin
    sync_replicas=False,      # in a TF_CONFIG cluster: synchronous updates (SyncReplicasOptimizer); default async
)

EVAL_BATCH_SIZE = 128

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

# Training gradients of stride-1 convolutions as forward convolutions (fastconv.forms._conv_grads_as_forward_convs):
# 'auto' where the CPU lacks AVX-512 (resnet_graph.fastconv.cpu), 'on', 'off' (TensorFlow's Conv2DBackpropInput /
# Conv2DBackpropFilter), which are the faster ones on AVX-512 CPUs (docs/performance.md).
FORWARD_CONV_GRADIENTS = 'auto'

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
