"""What every command line shares: flag parsing and the exit-code contract.

Bad input -> one line on stderr and exit code 2, never a traceback;
Ctrl-C -> exit code 130.
"""
import os
import sys

from absl import flags

from resnet_graph.errors import UsageError
from resnet_graph.fastconv import cpu

FLAGS = flags.FLAGS

# TensorFlow reads it when it creates its first device: set before anything runs (config.CPU_BFC_ALLOCATOR).
ALLOCATOR_VARIABLE = 'TF_CPU_ALLOCATOR_USE_BFC'
USER_ALLOCATOR = os.environ.get(ALLOCATOR_VARIABLE)  # the user's own choice, None when there is none


def fail(prog, message):
    print('%s: error: %s' % (prog, ' '.join(str(message).split())), file=sys.stderr)
    sys.exit(2)


def run(prog, main, argv=None):
    """Parses the flags already defined, then calls ``main(args)`` (args: the positional arguments).

    Exits with main's return value (0 when None), 2 on a ``UsageError``, a
    flag error or a CPU setting of config.py that is not 'auto', 'on', 'off'
    (or a bool), 130 on Ctrl-C. Selects TensorFlow's BFC CPU allocator first
    where ``config.CPU_BFC_ALLOCATOR`` says so, unless TF_CPU_ALLOCATOR_USE_BFC
    is set.
    """
    argv = sys.argv if argv is None else argv
    try:
        bfc = cpu.enabled('CPU_BFC_ALLOCATOR')
        cpu.enabled('FORWARD_CONV_GRADIENTS')  # a bad value fails here, before anything runs
    except ValueError as e:
        fail(prog, e)
    if bfc:
        os.environ.setdefault(ALLOCATOR_VARIABLE, 'true')
    try:
        args = FLAGS(argv)[1:]
    except flags.Error as e:
        fail(prog, e)
    try:
        code = main(args)
    except UsageError as e:
        fail(prog, e)
    except KeyboardInterrupt:
        print('%s: interrupted' % prog, file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)

