"""A lower estimate of a training step's memory, checked against the machine before any graph is built.

``--batch_size 100000`` or ``--image_size 100000`` would otherwise die of an
out-of-memory kill or a segfault minutes later, with a traceback or nothing.
"""
import os

from resnet_graph.errors import UsageError

BYTES = 4  # float32 activations, variables, gradients and slots
SAVED_PER_CONV = 2  # tensors a convolution leaves for the backward pass (its output, its batch norm's output)
SLOTS = {'adam': 2, 'adamw': 2, 'momentum': 1}


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


def estimate(cfg, channels=3, num_classes=10):
    """Bytes one training step needs at least: (activations, parameters with gradients and optimizer slots, input).

    cfg: a resolved training configuration (depth, image_size, batch_size, optimizer and the architecture keys).
    """
    from resnet_graph.nets import variants
    spec = variants.resolve(cfg['depth'], **variants.from_config(cfg))
    size, batch = int(cfg['image_size']), int(cfg['batch_size'])
    stem_side, stages = _stages(spec, size)
    stem_kernel = 3 if spec.architecture == 'cifar' else 7
    elements = spec.stem_width * stem_side ** 2
    params = stem_kernel ** 2 * channels * spec.stem_width
    for side, convs, blocks, width_in, strided in stages:
        elements += blocks * sum(convs) * side ** 2
        if spec.shortcut == 'B' and (width_in != convs[-1] or strided):
            params += width_in * convs[-1]  # the first block's 1x1 projection
        for b in range(blocks):
            previous = width_in if b == 0 else convs[-1]
            kernels = [3, 3] if spec.block_kind == 'basic' else [1, 3, 1]
            for kernel, width in zip(kernels, convs):
                params += kernel ** 2 * previous * width
                previous = width
    params += spec.out_widths[-1] * num_classes
    activations = SAVED_PER_CONV * BYTES * batch * elements
    weights = BYTES * params * (2 + SLOTS.get(cfg.get('optimizer', 'adam'), 2))
    inputs = BYTES * batch * size * size * channels * 3  # the batch in flight and two prefetched
    return activations, weights, inputs


def available_bytes():
    """The machine's available memory in bytes (MemAvailable of /proc/meminfo, else sysconf); None if unknown."""
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


def check(cfg, channels=3, num_classes=10, available=None):
    """UsageError with the estimate when one training step cannot fit in the machine's available memory."""
    available = available_bytes() if available is None else available
    parts = estimate(cfg, channels, num_classes)
    needed = sum(parts)
    if available and needed > available:
        raise UsageError('a training step of depth %d, --batch_size %d, --image_size %d needs at least %s '
                         '(activations %s, weights with gradients and optimizer slots %s, input batches %s) and '
                         'this machine has %s available; lower --batch_size or --image_size'
                         % (cfg['depth'], cfg['batch_size'], cfg['image_size'], gib(needed), gib(parts[0]),
                            gib(parts[1]), gib(parts[2]), gib(available)))
    return needed


def gib(n):
    return '%.3g GiB' % (n / 2.0 ** 30)
