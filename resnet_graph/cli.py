"""What every command line shares: flag parsing and the exit-code contract.

Bad input -> one line on stderr and exit code 2, never a traceback;
Ctrl-C -> exit code 130.
"""
import sys

from absl import flags

FLAGS = flags.FLAGS


class UsageError(Exception):
    """A problem with the user's input; its message says what was wrong and what to do."""


def fail(prog, message):
    print('%s: error: %s' % (prog, ' '.join(str(message).split())), file=sys.stderr)
    sys.exit(2)


def run(prog, main, argv=None):
    """Parses the flags already defined, then calls ``main(args)`` (args: the positional arguments).

    Exits with main's return value (0 when None), 2 on a ``UsageError`` or a
    flag error, 130 on Ctrl-C.
    """
    argv = sys.argv if argv is None else argv
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


def require(condition, message):
    """Raises UsageError(message) unless condition holds."""
    if not condition:
        raise UsageError(message)
