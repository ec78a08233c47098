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
    nan_policy='stop',       # stop: end the run at a NaN/Inf loss; skip: skip that update and go on
)

EVAL_BATCH_SIZE = 128

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
