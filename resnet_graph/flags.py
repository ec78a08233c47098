"""Every command-line flag, defined in one place; defaults come from ``config.py``.

Each command calls its ``define_*`` function once, before parsing.
"""
import math

from absl import flags

import config

FLAGS = flags.FLAGS
T = config.TRAIN


def define_train():
    flags.DEFINE_integer('depth', T['depth'], 'ResNet depth: 18, 34, 50, 101, 152, or 6n+2 (CIFAR-style).')
    flags.DEFINE_string('dataset', T['dataset'], 'Data set name (digits: the embedded default).')
    flags.DEFINE_string('data_dir', T['data_dir'], 'Where the data set lives (unused for digits).')
    flags.DEFINE_string('model_dir', T['model_dir'], 'Run directory (default runs/resnet<depth>); '
                        'an existing one is resumed.')
    flags.DEFINE_integer('image_size', T['image_size'], 'Side of the square images the network sees.')
    flags.DEFINE_integer('batch_size', T['batch_size'], 'Training batch size.')
    flags.DEFINE_integer('epochs', T['epochs'], 'Training epochs (ignored when --max_steps is set).')
    flags.DEFINE_integer('max_steps', T['max_steps'], 'Total training steps; 0: --epochs decide.')
    flags.DEFINE_float('learning_rate', T['learning_rate'], 'Initial learning rate (of every --optimizer).')
    flags.DEFINE_float('learning_decay_rate', T['learning_decay_rate'], 'Exponential decay factor.')
    flags.DEFINE_integer('learning_decay_steps', T['learning_decay_steps'], 'Steps per decay (staircase).')
    flags.DEFINE_float('weight_decay', T['weight_decay'], 'L2 factor on conv and dense kernels.')
    flags.DEFINE_float('bn_momentum', T['bn_momentum'], 'Batch-norm moving-average decay.')
    flags.DEFINE_integer('eval_every', T['eval_every'], 'Validate every N steps; 0: once per epoch.')
    flags.DEFINE_integer('log_every', T['log_every'], 'Log and write train summaries every N steps.')
    flags.DEFINE_integer('histogram_every', T['histogram_every'], 'Write weight and BN-statistics histograms '
                         'every N steps; 0: never.')
    flags.DEFINE_integer('trace_step', T['trace_step'], 'Write a Chrome trace of this training step into '
                         'train/; -1: none.')
    flags.DEFINE_integer('max_to_keep', T['max_to_keep'], 'Rolling checkpoints kept.')
    flags.DEFINE_integer('seed', T['seed'], 'Seed of the initialisation and the data order.')
    flags.DEFINE_enum('conv', T['conv'], ['shape_aware', 'plain'], 'Convolutions: the exact CPU-tuned forms of '
                      'resnet_graph/fastconv (same arithmetic), or TensorFlow\'s plain Conv2D.')
    flags.DEFINE_enum('nan_policy', T['nan_policy'], ['stop', 'skip'], 'At a NaN or Inf loss: stop the run '
                      '(nothing is saved after it) or skip that update and count it.')
    define_dtype()
    define_data()
    define_recipe()
    define_architecture()
    define_scale_out()


def define_dtype(default=T['dtype']):
    """--dtype of train and benchmark: mixed precision (config.COMPUTE_DTYPES)."""
    flags.DEFINE_enum('dtype', default, list(config.COMPUTE_DTYPES), 'Compute dtype of the convolutions '
                      'and the dense layer; the variables stay float32 (master weights, the same checkpoints), batch '
                      'norm statistics and the loss float32; float16 adds dynamic loss scaling.')


def define_scale_out():
    """The scaling-out flags of train (resnet_graph/training/towers.py, distributed.py)."""
    flags.DEFINE_integer('num_devices', T['num_devices'], 'Towers on this machine, the batch split between them: '
                         'the first N GPUs, else N virtual CPU devices.')
    flags.DEFINE_list('devices', T['devices'], 'The towers\' devices, comma-separated, e.g. /gpu:0,/gpu:1 '
                      '(instead of --num_devices).')
    flags.DEFINE_boolean('sync_bn', T['sync_bn'], 'With towers: synchronised batch norm, normalising with the '
                         'statistics of the whole batch (all-reduced across the towers) instead of each tower\'s part.')
    flags.DEFINE_enum('ps_strategy', T['ps_strategy'], ['by_size', 'round_robin'], 'In a TF_CONFIG cluster: '
                      'each variable to the ps task holding the fewest bytes (by_size), or in turn (round_robin).')
    flags.DEFINE_boolean('sync_replicas', T['sync_replicas'], 'In a TF_CONFIG cluster: synchronous updates '
                         '(SyncReplicasOptimizer over every worker); default asynchronous.')


def define_network_shape(defaults, channels_help, classes_help):
    """--depth, --image_size, --channels and --num_classes of summary and benchmark, from their ``defaults``."""
    flags.DEFINE_integer('depth', defaults['depth'], 'ResNet depth: 18, 34, 50, 101, 152, or 6n+2 (CIFAR-style).')
    flags.DEFINE_integer('image_size', defaults['image_size'], 'Side of the square input images.')
    flags.DEFINE_integer('channels', defaults['channels'], channels_help)
    flags.DEFINE_integer('num_classes', defaults['num_classes'], classes_help)


def define_summary():
    """Flags of resnet_graph.summary: the network's shape and its variants."""
    from resnet_graph.nets import variants
    d = config.COMMANDS['summary']
    define_network_shape(d, 'Input channels.', 'Classes of the dense head.')
    flags.DEFINE_boolean('json', d['json'], 'Print one JSON document instead of the table.')
    flags.DEFINE_string('model_dir', None, 'Summarise this run directory\'s network (its config.json gives the '
                        'depth, variant, image size, channels and classes; read only).')
    define_architecture(variants.DEFAULTS)


def define_import_keras():
    """Flags of resnet_graph.import_keras."""
    d = config.COMMANDS['import_keras']
    flags.DEFINE_enum('model', None, ['resnet50', 'resnet101', 'resnet152'], 'Which keras.applications ResNet '
                      'the file holds.')
    flags.DEFINE_string('weights', None, 'The Keras file: .keras, .h5 (full model or weights) or .weights.h5.')
    flags.DEFINE_string('model_dir', None, 'The run directory to write (must not hold a run).')
    flags.DEFINE_integer('image_size', d['image_size'], 'Image side recorded for evaluate and predict (Keras: 224).')
    flags.DEFINE_string('labels', None, 'A file of class names, one a line (default: the class indices).')
    flags.mark_flag_as_required('model')


def define_import_checkpoint():
    """Flags of resnet_graph.import_checkpoint."""
    d = config.COMMANDS['import_checkpoint']
    flags.DEFINE_enum('variant', None, ['slim_v1', 'slim_v2', 'official_v1', 'official_v2'], 'The family of '
                      'the checkpoint: TF-Slim resnet_v1/v2 or tensorflow/models official r1 v1.5/v2.')
    flags.DEFINE_integer('depth', d['depth'], 'ResNet depth: 50, 101 or 152 (official: also 18, 34).')
    flags.DEFINE_string('checkpoint', None, 'The checkpoint: its prefix (the path without .index), one of its '
                        'files, a V1 file (resnet_v1_50.ckpt), a directory holding one, or a SavedModel directory.')
    flags.DEFINE_string('model_dir', None, 'The run directory to write (must not hold a run).')
    flags.DEFINE_integer('num_classes', None, 'Classifier width (default: the family\'s 1000 or 1001).')
    flags.DEFINE_string('labels', None, 'A file of class names, one a line (default: the class indices).')
    flags.DEFINE_integer('image_size', d['image_size'], 'Image side recorded for evaluate, predict and export.')
    flags.DEFINE_boolean('moving_averages', d['moving_averages'], 'Import the ExponentialMovingAverage shadows of '
                         'the weights (V/ExponentialMovingAverage, as slim\'s evaluation restored them) instead of '
                         'their raw values.')
    flags.mark_flag_as_required('variant')


def define_architecture(defaults=T):
    """The architecture-variant flags (train and summary); resnet_graph/nets/variants.py says what each does."""
    from resnet_graph.nets import variants
    flags.DEFINE_enum('architecture', defaults['architecture'], variants.ARCHITECTURES, 'imagenet (7x7 stem, '
                      'four stages), cifar (depth 6n+2: 3x3 stem, stages of 16/32/64 filters) or auto (imagenet '
                      'for 18/34/50/101/152, cifar for other 6n+2 depths).')
    flags.DEFINE_enum('shortcut', defaults['shortcut'], variants.SHORTCUTS, 'Where a block changes shape: A '
                      '(identity + zero channels) or B (1x1 projection); auto: A for cifar, B for imagenet.')
    flags.DEFINE_integer('resnet_version', defaults['resnet_version'], '1: post-activation; 2: pre-activation '
                         '(BN-ReLU before each conv).')
    flags.DEFINE_enum('stride_in', defaults['stride_in'], variants.STRIDE_IN, 'Bottleneck stride in the first 1x1 '
                      '(v1) or in the 3x3 (v1.5).')
    flags.DEFINE_float('width_multiplier', defaults['width_multiplier'], 'Scales the inner widths of the blocks '
                       '(wide ResNets; 2 with depth 50 is wide_resnet50_2).')
    flags.DEFINE_boolean('no_residual', defaults['no_residual'], 'The plain network: the same convolutions '
                         'without shortcut additions.')
    flags.DEFINE_enum('data_format', defaults['data_format'], variants.DATA_FORMATS, 'Layout inside the network; '
                      'NCHW needs a GPU.')
    flags.DEFINE_enum('variant', defaults['variant'], variants.VARIANTS, 'standard; keras (the layout of '
                      'keras.applications ResNets, for imported weights); legacy (the legacy trainer\'s graph and '
                      'variable names, to restore its checkpoints); slim_v1, slim_v2 (TF-Slim\'s resnet_v1/resnet_v2 '
                      'graphs and variable names, for its model-zoo checkpoints; depths 50, 101, 152).')


def define_data():
    """The data-source flags of train (resnet_graph/data/)."""
    flags.DEFINE_float('validation_fraction', T['validation_fraction'], 'Fraction of each class of the training '
                       'files held out for validation (data sets without a fixed split).')
    flags.DEFINE_integer('split_seed', T['split_seed'], 'Seed of the validation split (kept by a resumed run).')
    flags.DEFINE_integer('channels', T['channels'], 'Image channels the network sees: 1, 3 or 4; 0 keeps the '
                         "data set's own.")
    flags.DEFINE_enum('augment', T['augment'], ['none', 'cifar', 'imagenet', 'affine'], 'Training augmentation: '
                      'cifar (pad 4 + random crop + flip), imagenet (random-resized crop + flip) or affine '
                      '(rotation, shift, zoom, flip).')
    flags.DEFINE_boolean('strict_data', T['strict_data'], 'A corrupt image is an error (default: skipped, counted).')
    flags.DEFINE_boolean('download', T['download'], 'Download mnist, fashion_mnist, cifar10 or cifar100 into '
                         '--data_dir (default: the cache directory) when missing.')
    define_max_image_pixels()
    flags.DEFINE_list('data_roots', T['data_roots'], 'Comma-separated directories a CSV manifest\'s image paths '
                      'may resolve into besides the manifest\'s own directory (default: none).')


def define_max_image_pixels():
    """--max_image_pixels of train, predict and export: the pixel cap read from each image's header."""
    flags.DEFINE_integer('max_image_pixels', T['max_image_pixels'], 'An image whose header says more pixels than '
                         'this is refused before decoding (a small file can hold a huge image); files are read up to '
                         '4 bytes a pixel of it.', lower_bound=1)


class _FloatListParser(flags.ListParser):
    """Comma-separated numbers -> a list of floats (a bad number is a flag error: exit 2)."""

    def parse(self, argument):
        values = super().parse(argument)
        try:
            return [float(v) for v in values]
        except (TypeError, ValueError):
            raise ValueError('expected comma-separated numbers, got %r' % (argument,))


def _define_float_list(name, default, help_text):
    flags.DEFINE(_FloatListParser(), name, default, help_text, serializer=flags.CsvListSerializer(','))


def define_recipe():
    """The training-recipe and fine-tuning flags of train (resnet_graph/training/: optim, schedules, finetune)."""
    flags.DEFINE_enum('optimizer', T['optimizer'], ['adam', 'momentum', 'adamw'], 'adam (legacy default), '
                      'momentum (SGD with momentum) or adamw (Adam + decoupled weight decay on kernels).')
    flags.DEFINE_float('momentum', T['momentum'], 'Momentum of --optimizer momentum.')
    flags.DEFINE_boolean('nesterov', T['nesterov'], 'Nesterov momentum (needs --optimizer momentum).')
    flags.DEFINE_float('adamw_weight_decay', T['adamw_weight_decay'], 'Decoupled decay of --optimizer adamw: '
                       'kernel -= lr * this * kernel each step (in addition to the L2 --weight_decay).')
    flags.DEFINE_enum('schedule', T['schedule'], ['exponential', 'piecewise', 'cosine'], 'Learning-rate '
                      'schedule: exponential (legacy), piecewise (--boundaries_epochs) or cosine (over the run).')
    _define_float_list('boundaries_epochs', T['boundaries_epochs'], 'Piecewise: epochs at which the rate '
                       'changes, comma-separated and increasing, e.g. 91,136.')
    _define_float_list('lr_values', T['lr_values'], 'Piecewise: the rate of each piece (one more than the '
                       'boundaries); default: learning_rate * learning_decay_rate ** i.')
    flags.DEFINE_float('warmup_epochs', T['warmup_epochs'], 'Linear learning-rate warm-up over this many epochs.')
    flags.DEFINE_float('label_smoothing', T['label_smoothing'], 'Label smoothing of the training loss, in [0, 1).')
    flags.DEFINE_float('clip_gradient_norm', T['clip_gradient_norm'], 'Clip the gradients to this global norm; '
                       '0: no clipping.')
    flags.DEFINE_string('warm_start_from', T['warm_start_from'], 'Initialise a fresh run from this run directory '
                        'or checkpoint (ignored when the run resumes).')
    flags.DEFINE_list('warm_start_exclude', T['warm_start_exclude'], 'Comma-separated regexes of variable names '
                      'not taken from --warm_start_from (e.g. head/ for a new classifier).')
    flags.DEFINE_integer('freeze_stages', T['freeze_stages'], 'Do not train the stem and the first N stages '
                         '(their BN statistics stay too).')


def define_restore():
    d = config.COMMANDS['restore']
    flags.DEFINE_string('model_dir', None, 'Run directory written by resnet_graph.train.')
    flags.DEFINE_string('checkpoint', d['checkpoint'], 'best, latest, or a checkpoint path.')
    flags.DEFINE_boolean('json', d['json'], 'Print one JSON document instead of text.')


def define_evaluate():
    d = config.COMMANDS['evaluate']
    define_restore()
    flags.DEFINE_enum('split', d['split'], ['test', 'validation', 'train'], 'Which split to evaluate.')
    flags.DEFINE_string('dataset', None, 'Evaluate on this data set instead of the run\'s own (an imported run '
                        'has none), read with the run\'s image size and preprocessing.')
    flags.DEFINE_string('data_dir', d['data_dir'], 'Where --dataset lives (unused for digits); alone: where the '
                        'run\'s own data set lives now.')
    flags.DEFINE_boolean('confusion', None, 'With --json: the confusion matrix (default: for runs of up to %d '
                         'classes; --confusion for any, --noconfusion for none).' % config.CONFUSION_MAX_CLASSES)


def define_predict():
    d = config.COMMANDS['predict']
    define_restore()
    define_max_image_pixels()
    flags.DEFINE_integer('top_k', d['top_k'], 'Classes listed per file.')


def define_export():
    define_restore()
    define_max_image_pixels()
    flags.DEFINE_enum('format', None, ['saved_model', 'frozen_graph'], 'saved_model: a SavedModel directory; '
                      'frozen_graph: one GraphDef .pb with the variables folded into constants.')
    flags.DEFINE_string('out', None, 'Where to write it (a SavedModel directory must not exist yet).')


def define_plot():
    d = config.COMMANDS['plot']
    flags.DEFINE_multi_string('model_dir', None, 'Run directory; repeat it to compare runs on one figure.')
    flags.DEFINE_string('out', d['out'], 'The figure (PNG) to write.')


def define_benchmark():
    d = config.COMMANDS['benchmark']
    define_network_shape(d, 'Input channels of the synthetic images.', 'Classes of the synthetic labels.')
    flags.DEFINE_integer('batch_size', d['batch_size'], 'Batch size.')
    flags.DEFINE_enum('mode', d['mode'], ['train', 'infer'], 'Time training steps or inference.')
    flags.DEFINE_enum('data', d['data'], ['synthetic', 'real'], 'synthetic: random tensors held in the graph; '
                      'real: --dataset through the training pipeline (ours only).')
    flags.DEFINE_string('dataset', d['dataset'], 'The data set of --data real.')
    flags.DEFINE_string('data_dir', d['data_dir'], 'Where that data set lives.')
    flags.DEFINE_integer('steps', d['steps'], 'Timed steps (the median is reported).')
    flags.DEFINE_integer('warmup', d['warmup'], 'Untimed steps first.')
    flags.DEFINE_integer('repeats', d['repeats'], 'Run the whole sequence (matmul, ours, Keras) this many times, '
                         'alternated, and report medians: on a machine whose speed drifts, each ratio is taken '
                         'between processes that ran minutes apart.')
    flags.DEFINE_enum('compare', d['compare'], ['', 'keras'], 'Also time the equivalent Keras model.')
    flags.DEFINE_enum('xla', d['xla'], ['off', 'on'], 'XLA auto-clustering of our graph.')
    flags.DEFINE_enum('conv', T['conv'], ['shape_aware', 'plain'], 'Our convolutions (as the train flag).')
    define_dtype()
    flags.DEFINE_enum('fold_bn', 'on' if config.FOLD_BN == 'on' else 'off', ['on', 'off'], '--mode infer: fold '
                      'each batch norm into the convolution before it (one convolution + bias; the same variables).')
    flags.DEFINE_boolean('json', d['json'], 'Print one JSON object.')


INT64_MAX = 2 ** 63 - 1  # what an integer flag may be: TensorFlow's int64 (steps, seeds, shapes) and C's long
INT64_MIN = -2 ** 63
FLOAT32_MAX = 3.4028234663852886e+38  # what a finite float flag may be: they become float32 tensors
EPOCHS_MAX = 2 ** 31 - 1  # epochs x the steps of an epoch (up to 2 ** 32: a data set of that many batches) in int64
EPOCHS_REASON = 'epochs times the steps of an epoch must fit int64'
SHAPE_MAX = 2 ** 20  # an image side or channel count: a [1, side, side, channels] tensor has under 2 ** 63 entries
# Left to the command's own, tighter check, which refuses them before any use in its own words (train.SEED_MAX).
OWN_CHECKS = ('seed', 'split_seed')
CLASSES_MAX = 2 ** 31 - 1  # the classifier's width, a dimension of TensorFlow's int32 shapes
# Tighter bounds of some flags (of every command defining them): name -> (at most, why).
BOUNDS = {'epochs': (EPOCHS_MAX, EPOCHS_REASON), 'warmup_epochs': (EPOCHS_MAX, EPOCHS_REASON),
          'boundaries_epochs': (EPOCHS_MAX, EPOCHS_REASON), 'image_size': (SHAPE_MAX, 'pixels a side'),
          'channels': (SHAPE_MAX, 'channels of an image'), 'num_classes': (CLASSES_MAX, "TensorFlow's int32 shapes")}


def _number_kind(flag):
    """int, float or None: the numbers flag ``flag`` holds (one, or a list of them)."""
    if isinstance(flag.parser, flags.IntegerParser):
        return int
    if isinstance(flag.parser, (flags.FloatParser, _FloatListParser)):
        return float
    return None


def out_of_bounds(flag_values=FLAGS):
    """The name of the first number flag of ``flag_values`` (any command's; absl's own too) holding a number too
    large to use, and the message saying so, e.g. '--max_steps 99999999999999999999999 is too large (at most
    9223372036854775807)'; None when there is none. Integers must fit int64; finite floats float32 (NaN and
    infinity are left to the commands' own checks); BOUNDS names tighter bounds."""
    for name in sorted(flag_values):
        flag = flag_values[name]
        kind = _number_kind(flag)
        value = flag.value
        values = value if isinstance(value, (list, tuple)) else [value]
        if kind is None or name in OWN_CHECKS or not values or any(v is None or isinstance(v, bool) for v in values):
            continue
        low, high = (INT64_MIN, INT64_MAX) if kind is int else (-FLOAT32_MAX, FLOAT32_MAX)
        high, why = BOUNDS.get(name, (high, None))
        shown = ','.join(('%d' if kind is int else '%g') % v for v in values)
        for v in values:
            if kind is float and not math.isfinite(v):
                continue
            if v > high:
                return name, '--%s %s is too large (at most %s%s)' % (name, shown, high, ': ' + why if why else '')
            if v < low:
                return name, '--%s %s is too small (at least %s)' % (name, shown, low)
    return None
