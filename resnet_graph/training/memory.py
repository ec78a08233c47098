"""A lower estimate of a command's memory, checked against the machine before any graph is built.

``--batch_size 100000`` or ``--image_size 100000`` would otherwise die of an
out-of-memory kill or a segfault minutes later, with a traceback or nothing.

What grows with the batch, per image: every activation the forward pass keeps
for the backward pass (each convolution's output and its batch norm + ReLU
output, each block's sum, the patches of the small maps' convolutions), the
backward pass's gradient buffers, and the input pipeline's batches in flight.
Validation runs batches of ``config.EVAL_BATCH_SIZE`` without the backward pass.
"""
import os
import resource
import sys

import config
from resnet_graph.errors import UsageError

BYTES = 4  # float32 activations, variables, gradients and slots
SAVED_PER_CONV = 2  # tensors a convolution leaves for the backward pass (its output, its batch norm's output)
GRADIENT_BUFFERS = 1  # the backward pass's gradient in flight, the size of the largest activation
INFERENCE_LIVE = 3  # an inference pass holds a layer's input, its output and the block's shortcut
BATCHES_IN_FLIGHT = 5  # the input pipeline: two batches being made, two prefetched, the step's own
COPIES_PER_BATCH = 2  # a batch as fetched and as resized and normalised
SLOTS = {'adam': 2, 'adamw': 2, 'momentum': 1}
# What a step holds beside the activations counted here (TensorFlow's temporaries, its allocator's slack), as a
# multiple of them: a step's peak resident memory was 1.3 to 1.55 times the count on CPU (depth 8 and 50).
TEMPORARIES = 1.5


def _stages(spec, image_size):
    """The stem's output side, and [(side, [conv output widths of one block], blocks, input width, strided)] of each
    stage."""
    side = image_size if spec.architecture == 'cifar' else -(-image_size // 2)
    stem_side, stages, width_in = side, [], spec.stem_width
    if spec.architecture != 'cifar':
        side = -(-side // 2)  # the max-pool
    for i, (blocks, inner, out) in enumerate(zip(spec.num_blocks, spec.inner_widths, spec.out_widths)):
        if i:
            side = -(-side // 2)
        convs = [inner, out] if spec.block_kind == 'basic' else [inner, inner, out]
        stages.append((side, convs, blocks, width_in, i > 0))
        width_in = out
    return stem_side, stages


def activations(spec, image_size, channels):
    """Per image: (elements the forward pass keeps for the backward pass, elements of its largest activation)."""
    stem_side, stages = _stages(spec, image_size)
    stem = spec.stem_width * stem_side ** 2
    kept, largest = channels * image_size ** 2 + SAVED_PER_CONV * stem, stem
    if spec.architecture != 'cifar':
        kept += spec.stem_width * (-(-stem_side // 2)) ** 2  # the max-pool's output
    for side, convs, blocks, width_in, strided in stages:
        positions = side * side
        kept += blocks * SAVED_PER_CONV * sum(convs) * positions
        if spec.shortcut == 'B' and (width_in != convs[-1] or strided):
            kept += SAVED_PER_CONV * convs[-1] * positions  # the first block's projection
        largest = max(largest, max(convs) * positions)
    return kept, largest


def parameters(spec, channels, num_classes):
    """The number of convolution and dense kernel elements of the network."""
    stem_side, stages = _stages(spec, 32)
    stem_kernel = 3 if spec.architecture == 'cifar' else 7
    params = stem_kernel ** 2 * channels * spec.stem_width
    for side, convs, blocks, width_in, strided in stages:
        if spec.shortcut == 'B' and (width_in != convs[-1] or strided):
            params += width_in * convs[-1]  # the first block's 1x1 projection
        for b in range(blocks):
            previous = width_in if b == 0 else convs[-1]
            kernels = [3, 3] if spec.block_kind == 'basic' else [1, 3, 1]
            for kernel, width in zip(kernels, convs):
                params += kernel ** 2 * previous * width
                previous = width
    return params + spec.out_widths[-1] * num_classes


def estimate(cfg, channels=3, num_classes=10, training=True):
    """Bytes one step needs at least: (activations, parameters with gradients and optimizer slots, input batches).

    cfg: a config.RunConfig (its depth, image_size, batch_size, optimizer and architecture fields count).
    training: a training step (kept activations, gradient buffers, the pipeline's batches; validation's batches of
    config.EVAL_BATCH_SIZE when they need more), else an inference pass of batch_size images.
    """
    from resnet_graph.nets import variants
    spec = variants.resolve(cfg.depth, **variants.from_config(cfg))
    size, batch = int(cfg.image_size), int(cfg.batch_size)
    kept, largest = activations(spec, size, channels)
    image = size * size * channels
    if not training:
        return BYTES * batch * (INFERENCE_LIVE * largest + image), BYTES * parameters(spec, channels, num_classes), 0
    step = batch * (kept + GRADIENT_BUFFERS * largest)
    validation = config.EVAL_BATCH_SIZE * (INFERENCE_LIVE * largest + image)
    weights = parameters(spec, channels, num_classes) * (2 + SLOTS.get(cfg.optimizer, 2))
    return BYTES * max(step, validation), BYTES * weights, BYTES * batch * image * BATCHES_IN_FLIGHT * COPIES_PER_BATCH


# (limit, usage, statistics) of this process's memory cgroup, v2 then v1: a container's limit, which
# /proc/meminfo (the host's) does not show and whose excess is an out-of-memory kill (exit 137).
CGROUP_FILES = (('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current', '/sys/fs/cgroup/memory.stat',
                 'inactive_file'),
                ('/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.usage_in_bytes',
                 '/sys/fs/cgroup/memory/memory.stat', 'total_inactive_file'))


# Address space TensorFlow maps that no tensor accounts for: ``import tensorflow`` (its shared libraries), and
# a session before its first step (thread pools, their stacks and malloc arenas, graph optimisation passes).
# Under ``ulimit -v`` it counts as memory; a virtual size is far above the resident one with TensorFlow.
TENSORFLOW_IMPORT_MAPPED = 3 << 29
SESSION_MAPPED = 1 << 30
INFERENCE_SESSION_MAPPED = (3 << 30) // 5  # an inference session's: no backward pass, no input pipeline
ALLOCATOR_MAPPED = 2  # its allocator extends its pool by regions that double: up to twice the bytes it holds
TRAIN_FLAGS = ('batch_size', 'image_size', 'depth')  # the flags of train (and benchmark) that change the estimate


def available_bytes():
    """The memory this process can still take, in bytes: the least of MemAvailable of /proc/meminfo (else
    sysconf), a memory cgroup's room and the address space ``ulimit -v`` leaves; None if unknown."""
    room = limit()
    return room[0] if room else None


def limit(training=True):
    """(bytes, phrase) of the tightest memory limit, the phrase naming it for a refusal; None if none is known.
    training: the session will train (else it only infers, and maps less under ``ulimit -v``)."""
    limits = [(n, phrase) for n, phrase in (
        (_meminfo_available(), 'this machine has %s available'),
        (_cgroup_room(), "the container's memory limit (its memory cgroup) leaves %s available"),
        (_address_space_room(training), 'the address-space limit (ulimit -v) leaves room for %%s of tensors '
         '(TensorFlow maps %s itself, and up to %d times the tensors it holds)'
         % (gib(tensorflow_mapped(training)), ALLOCATOR_MAPPED)))
        if n is not None]
    return min(limits, key=lambda item: item[0]) if limits else None


def tensorflow_mapped(training=True):
    """Bytes of address space this process will have mapped before a step's first tensor: what it maps now,
    TensorFlow's libraries when not yet imported, and a session's own (a training one's, else an inference one's)."""
    try:
        with open('/proc/self/status') as f:
            mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmSize:'))
    except (OSError, ValueError, IndexError, StopIteration):
        mapped = 0
    session = SESSION_MAPPED if training else INFERENCE_SESSION_MAPPED
    return mapped + (0 if 'tensorflow' in sys.modules else TENSORFLOW_IMPORT_MAPPED) + session


def _address_space_room(training=True):
    """Bytes of tensors ``ulimit -v`` (RLIMIT_AS) leaves room for beside what TensorFlow maps (``tensorflow_mapped``);
    None: unlimited."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    return max(soft - tensorflow_mapped(training), 0) // ALLOCATOR_MAPPED


def _meminfo_available():
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room():
    """Bytes left under the memory cgroup's limit (its reclaimable page cache counted as free); None: no limit."""
    for limit_path, usage_path, stat_path, inactive_key in CGROUP_FILES:
        try:
            with open(limit_path) as f:
                limit = f.read().strip()
            with open(usage_path) as f:
                usage = int(f.read())
            with open(stat_path) as f:
                stats = dict(line.split() for line in f if len(line.split()) == 2)
        except (OSError, ValueError):
            continue
        if limit == 'max' or int(limit) >= 1 << 60:  # the kernel's "unlimited"
            return None
        return max(int(limit) - usage + int(stats.get(inactive_key, 0)), 0)
    return None


def check(cfg, channels=3, num_classes=10, available=None, training=True, flags=TRAIN_FLAGS):
    """UsageError with the estimate when one step cannot fit in the machine's available memory; returns the bytes.

    training: as for ``estimate``. flags: the command's flags among TRAIN_FLAGS (the advice names no other; without
    'batch_size' one image is the pass, without 'image_size' the size is the run's).
    """
    available, phrase = (available, 'this machine has %s available') if available is not None else (
        limit(training) or (None, None))
    parts = estimate(cfg, channels, num_classes, training)
    needed = total(parts)
    if available is not None and needed > available:
        raise UsageError('%s of depth %d, %s, %s %d needs at least %s (activations and temporaries %s, weights%s %s, '
                         'input batches %s) and %s; %s'
                         % ('a training step' if training else 'an inference pass', cfg.depth, '--batch_size %d'
                            % cfg.batch_size if 'batch_size' in flags else 'one image',
                            '--image_size' if 'image_size' in flags else 'image size', cfg.image_size, gib(needed),
                            gib(needed - parts[1] - parts[2]),
                            ' with gradients and optimizer slots' if training else '', gib(parts[1]), gib(parts[2]),
                            phrase % gib(available),
                            _advice(cfg, channels, num_classes, available, training, phrase, flags)))
    return needed


def total(parts):
    """The bytes a step of ``estimate``'s parts (activations, weights, input batches) needs, temporaries counted."""
    activations, weights, inputs = parts
    return int(TEMPORARIES * activations) + weights + inputs


def _advice(cfg, channels, num_classes, available, training, phrase, flags):
    """What to do about a step that does not fit in ``available`` bytes (named by ``phrase``): the limit to raise,
    and which of the command's ``flags`` would make it fit."""
    weights_only = estimate(cfg, channels, num_classes, training)[1] > available  # no batch or image size helps
    fits = largest_batch(cfg, channels, num_classes, available, training) if 'batch_size' in flags else 0
    if weights_only:
        lever = 'a smaller --depth or fewer classes' if 'depth' in flags else ''
    elif fits:
        lever = 'lower --batch_size (%d fits)%s' % (fits, ' or --image_size' if 'image_size' in flags else '')
    else:
        lever = 'lower --image_size' + (' (no --batch_size fits at this size)' if 'batch_size' in flags else '') if (
            'image_size' in flags) else ''
    if 'ulimit' in phrase:
        kib = (tensorflow_mapped(training) + ALLOCATOR_MAPPED * total(estimate(cfg, channels, num_classes, training)))
        kib = (kib // 1024 // 10000 + 2) * 10000  # a round number, with room: a process's own size varies by run
        return 'raise ulimit -v to %d or more' % kib + (', or ' + lever if lever else '')
    if not lever:
        return ('the weights alone do not fit; ' if weights_only else '') + (
            "raise the container's memory limit" if 'cgroup' in phrase else 'free memory, or use a machine with more')
    return ('the weights alone do not fit: ' if weights_only else '') + lever


def largest_batch(cfg, channels, num_classes, available, training=True):
    """The largest batch size whose estimate fits in ``available`` bytes (0: none), by bisection."""
    low, high = 0, max(int(cfg.batch_size), 1)
    while high - low > 1:
        middle = (low + high) // 2
        if total(estimate(cfg.replace(batch_size=middle), channels, num_classes, training)) <= available:
            low = middle
        else:
            high = middle
    return low


def gib(n):
    return '%.3g GiB' % (n / 2.0 ** 30)
