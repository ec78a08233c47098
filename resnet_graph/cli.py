"""What every command line shares: flag parsing and the exit-code contract.

Bad input -> one line on stderr and exit code 2, never a traceback;
Ctrl-C -> exit code 130.
"""
import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys

from absl import flags

from resnet_graph.errors import UsageError
from resnet_graph.fastconv import cpu

FLAGS = flags.FLAGS

# TensorFlow reads it when it creates its first device: set before anything runs (config.CPU_BFC_ALLOCATOR).
ALLOCATOR_VARIABLE = 'TF_CPU_ALLOCATOR_USE_BFC'
USER_ALLOCATOR = os.environ.get(ALLOCATOR_VARIABLE)  # the user's own choice, None when there is none


HELP_ARGUMENTS = ('--help', '-h', '-?', '--helpshort', '--helpfull')
LOG_VARIABLE = 'TF_CPP_MIN_LOG_LEVEL'


@contextlib.contextmanager
def _stderr_silenced():
    """Points file descriptor 2 at /dev/null for the block (C++ writes that Python cannot filter)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, 'w') as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports ``tensorflow`` with stderr silenced: its C++ start-up notices (oneDNN, CUDA drivers, CPU
    features, absl's InitializeLog) are written before TF_CPP_MIN_LOG_LEVEL applies."""

    def find_spec(self, name, path=None, target=None):
        if name != 'tensorflow':
            return None
        sys.meta_path.remove(self)  # once; and find_spec below must not find us again
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            with _stderr_silenced():
                loader_exec(module)
        spec.loader.exec_module = exec_module
        return spec


def quiet_tensorflow():
    """Quiets TensorFlow's C++ logging before it loads: TF_CPP_MIN_LOG_LEVEL=3 unless the user set it, and its
    import-time notices (written before that level applies) silenced unless the user asked for INFO (level 0).
    At levels 2 and 3 its Python logger (tf.compat.v1's deprecation notices) shows errors only."""
    level = os.environ.setdefault(LOG_VARIABLE, '3').strip()
    if level in ('2', '3'):
        logging.getLogger('tensorflow').setLevel(logging.ERROR)  # the logger tf.get_logger() returns, by name
    if 'tensorflow' in sys.modules:
        return
    if level in ('1', '2', '3') and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def asks_for_help(argv):
    """The help argument among argv's flags (before a ``--``), or None."""
    for arg in argv[1:]:
        if arg == '--':
            return None
        if arg.split('=', 1)[0] in HELP_ARGUMENTS:
            return arg.split('=', 1)[0]
    return None


def usage(prog, full=False):
    """The usage text: the command's docstring, then every flag with its default and meaning.

    full adds absl's own flags (--flagfile, --logtostderr, ...).
    """
    main_module = sys.modules.get('__main__')
    doc = (getattr(main_module, '__doc__', None) or '').strip() or 'python -m %s [flags]' % prog
    parts = [doc, '', 'flags:']
    for module, module_flags in sorted(FLAGS.flags_by_module_dict().items()):
        if not full and module.split('.')[0] == 'absl':
            continue
        for flag in sorted(module_flags, key=lambda f: f.name):
            parts.append(_describe_flag(flag))
    if full:
        parts.append('  --flagfile: Read more flags from this file, one --flag=value a line. (default: none)')
    else:
        parts += ['', '--helpfull also lists absl\'s own flags (--flagfile reads flags from a file).']
    return '\n'.join(parts)


def _describe_flag(flag):
    """'  --name: help (default: value)', one flag."""
    default = flag.default_as_str if flag.default_as_str is not None else 'none'
    text = '  --%s%s: %s' % ('[no]' if flag.boolean else '', flag.name, ' '.join((flag.help or '').split()))
    return '%s (default: %s)' % (text, default)


FLAGFILE_DIRECTIVES = ('--flagfile=', '-flagfile=')  # absl's forms inside a file (and --flagfile F on the line)
MAX_FLAGFILE_BYTES = 1 << 20  # a file of --flag=value lines; more is not one (e.g. /dev/zero, a data file)


def _flagfiles(args):
    """The --flagfile names among command-line ``args`` (before a ``--``), as absl reads them."""
    names, rest = [], list(args)
    while rest:
        arg = rest.pop(0)
        if arg == '--':
            break
        if arg in ('--flagfile', '-flagfile'):
            names += [os.path.expanduser(rest.pop(0))] if rest else []
        elif arg.startswith(FLAGFILE_DIRECTIVES):
            names.append(os.path.expanduser(arg.split('=', 1)[1].strip()))
    return names


def _read_flagfile(name):
    """The text of flag file ``name`` (None: a pipe or socket, left to absl); UsageError saying why it is none."""
    import stat
    hint = '; give a text file of --flag=value lines'
    try:
        mode = os.stat(name).st_mode
    except OSError as e:
        raise UsageError('cannot read --flagfile %s: %s%s' % (name, e.strerror or e, hint))
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return None  # --flagfile <(...): reading it here would leave absl nothing
    if not stat.S_ISREG(mode):
        raise UsageError('--flagfile %s is %s, not a file%s' % (
            name, 'a directory' if stat.S_ISDIR(mode) else 'a device', hint))
    try:
        with open(name, 'rb') as f:
            data = f.read(MAX_FLAGFILE_BYTES + 1)
    except OSError as e:
        raise UsageError('cannot read --flagfile %s: %s%s' % (name, e.strerror or e, hint))
    if len(data) > MAX_FLAGFILE_BYTES:
        raise UsageError('--flagfile %s is over %d bytes: not a file of flags%s' % (name, MAX_FLAGFILE_BYTES, hint))
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise UsageError('--flagfile %s is not UTF-8 text (byte %d: %s)%s' % (name, e.start, e.reason, hint))


def check_flagfiles(args):
    """UsageError for the first --flagfile, nested ones included, that cannot be read as text or that includes
    itself (absl would skip that line with a warning and run without the flags it meant)."""
    def visit(name, chain):
        if not name:
            return  # absl ignores an empty name
        real = os.path.realpath(name)
        if real in [r for r, _ in chain]:
            raise UsageError('--flagfile %s includes itself (%s); remove the circular --flagfile line'
                             % (name, ' -> '.join([n for _, n in chain] + [name])))
        text = _read_flagfile(name)
        for line in (text or '').splitlines():
            if line.startswith(FLAGFILE_DIRECTIVES):
                visit(os.path.expanduser(line.split('=', 1)[1].strip()), chain + [(real, name)])
    for name in _flagfiles(args):
        visit(name, [])


def parse_flags(prog, argv):
    """FLAGS(argv) -> the positional arguments; --help and its kin print usage and exit 0; a flag error, or a
    --flagfile that cannot be read as text or includes itself, is one line and exit 2."""
    asked = asks_for_help(argv)
    if asked:
        try:
            print(usage(prog, full=asked == '--helpfull'), flush=True)
        except BrokenPipeError:  # `--help | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    try:
        check_flagfiles(argv[1:])
        return FLAGS(argv)[1:]
    except UsageError as e:
        fail(prog, e)
    except flags.Error as e:
        fail(prog, re.sub(r'^(ERROR:+\s*)+', '', str(e)))  # absl's own prefix, behind ours
    except UnicodeDecodeError as e:
        fail(prog, 'a --flagfile is not UTF-8 text (byte %d: %s); give a text file of --flag=value lines'
             % (e.start, e.reason))
    except OSError as e:
        fail(prog, 'cannot read a --flagfile: %s' % (e.strerror or e))


def fail(prog, message):
    print('%s: error: %s' % (prog, ' '.join(str(message).split())), file=sys.stderr)
    sys.exit(2)


def run(prog, main, argv=None):
    """Parses the flags already defined, then calls ``main(args)`` (args: the positional arguments).

    Quiets TensorFlow's C++ logging before it loads (unless TF_CPP_MIN_LOG_LEVEL
    is set); --help, -h, --helpfull print the usage and exit 0. Exits with main's return value (0 when None), 2 on a ``UsageError``, a
    flag error or a CPU setting of config.py that is not 'auto', 'on', 'off'
    (or a bool), 130 on Ctrl-C. Selects TensorFlow's BFC CPU allocator first
    where ``config.CPU_BFC_ALLOCATOR`` says so, unless TF_CPU_ALLOCATOR_USE_BFC
    is set.
    """
    argv = sys.argv if argv is None else argv
    quiet_tensorflow()
    try:
        bfc = cpu.enabled('CPU_BFC_ALLOCATOR')
        cpu.enabled('FORWARD_CONV_GRADIENTS')  # a bad value fails here, before anything runs
    except ValueError as e:
        fail(prog, e)
    if bfc:
        os.environ.setdefault(ALLOCATOR_VARIABLE, 'true')
    args = parse_flags(prog, argv)
    try:
        code = main(args)
    except UsageError as e:
        fail(prog, e)
    except KeyboardInterrupt:
        print('%s: interrupted' % prog, file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)

