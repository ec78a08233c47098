"""What every command line shares: flag parsing and the exit-code contract.

Bad input -> one line on stderr and exit code 2, never a traceback;
Ctrl-C -> exit code 130; a stdout closed early (`| head`) -> exit code 0, quietly.
"""
import importlib.abc
import importlib.util
import logging
import os
import re
import signal
import sys

from absl import flags

from resnet_graph import errors
from resnet_graph import flagfiles
from resnet_graph import flags as run_flags
from resnet_graph.errors import UsageError
from resnet_graph.fastconv import cpu

FLAGS = flags.FLAGS

# TensorFlow reads it when it creates its first device: set before anything runs (config.CPU_BFC_ALLOCATOR).
ALLOCATOR_VARIABLE = 'TF_CPU_ALLOCATOR_USE_BFC'
USER_ALLOCATOR = os.environ.get(ALLOCATOR_VARIABLE)  # the user's own choice, None when there is none


HELP_FLAGS = ('help', 'h', '?', 'helpshort', 'helpfull')  # absl's help flags: --help, -h, --nohelp, --help=0
LOG_VARIABLE = 'TF_CPP_MIN_LOG_LEVEL'


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
            with errors.stderr_silenced():
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


def help_request(prog, argv):
    """(the help flag argv asks for, e.g. '--helpfull', or None; argv without its help flags) of argv's flags
    (before a ``--``). A help flag set false (--help=false, --nohelp) is dropped: the command runs, as with absl.
    Raises UsageError for a help flag whose value is not true or false."""
    asked, kept = None, list(argv[:1])
    for i, arg in enumerate(argv[1:], 1):
        if arg == '--':
            return asked, kept + list(argv[i:])
        name, equals, value = arg.lstrip('-').partition('=')
        if not arg.startswith('-') or (name not in HELP_FLAGS and not (
                name.startswith('no') and name[2:] in HELP_FLAGS and not equals)):
            kept.append(arg)
        elif name in HELP_FLAGS and (not equals or value.lower() in ('true', 't', '1')):
            asked = asked or '--' + name
        elif name in HELP_FLAGS and value.lower() not in ('false', 'f', '0'):
            raise UsageError('%s is not true or false: give --%s or --no%s; see python -m %s --help'
                             % (arg, name, name, prog))
    return asked, kept


def usage(prog, full=False):
    """The usage text: the command's docstring, then its flags with their defaults and meanings.

    full: every flag the command accepts, grouped by the module defining it, absl's own (--flagfile, --undefok)
    included, as absl's --helpfull does.
    """
    main_module = sys.modules.get('__main__')
    doc = (getattr(main_module, '__doc__', None) or '').strip() or 'python -m %s [flags]' % prog
    groups = sorted(FLAGS.flags_by_module_dict().items())
    if not full:
        own = [flag for module, module_flags in groups if module.split('.')[0] != 'absl' for flag in module_flags]
        return '\n'.join([doc, '', 'flags:'] + [_describe_flag(f) for f in sorted(own, key=lambda f: f.name)] + [
            '', '--helpfull lists every flag, absl\'s own too (--flagfile reads flags from a file).'])
    from absl.flags import _helpers  # --flagfile and --undefok, which FLAGS(argv) handles itself: absl keeps them here
    special = [('absl.flags', list(_helpers.SPECIAL_FLAGS._flags().values()))]  # noqa: SLF001
    parts = [doc]
    for module, module_flags in groups + special:
        parts += ['', module + ':'] + [_describe_flag(f) for f in sorted(set(module_flags), key=lambda f: f.name)]
    return '\n'.join(parts)


def _describe_flag(flag):
    """'  --name: help (default: value)', one flag."""
    default = flag.default_as_str if flag.default_as_str is not None else 'none'
    text = '  --%s%s: %s' % ('[no]' if flag.boolean else '', flag.name, ' '.join((flag.help or '').split()))
    return '%s (default: %s)' % (text, default)


def parse_flags(prog, argv):
    """FLAGS(argv) -> the positional arguments; --help and its kin print usage and exit 0 (--help=false runs the
    command); a flag error (naming the flag file and line it came from), a number too large to use (past int64 or
    float32, or a tighter bound: flags.out_of_bounds), or a --flagfile that cannot be read as text, includes itself
    or expands past flagfiles' bounds, is one line and exit 2."""
    expanded = []
    try:
        asked, args = help_request(prog, argv)  # first: --help answers even beside a broken --flagfile
        if not asked:
            expanded = flagfiles.expand(argv[1:])
            asked, args = help_request(prog, argv[:1] + [arg for arg, _ in expanded])
    except UsageError as e:
        fail(prog, e)
    if asked:
        try:
            print(usage(prog, full=asked == '--helpfull'), flush=True)
        except BrokenPipeError:  # `--help | head`: the reader has what it wanted
            stdout_closed()
        sys.exit(0)
    try:
        positional = FLAGS(args)[1:]
    except flags.Error as e:
        fail(prog, flag_error(prog, e, expanded))
    bad = run_flags.out_of_bounds(FLAGS)  # a number past int64 or float32 is a traceback wherever it is used
    if bad:
        name, message = bad
        fail(prog, '%s%s; see python -m %s --help' % (message, flagfiles.origin(expanded, name), prog))
    for name in FLAGS:  # bytes that are not UTF-8 arrive as surrogates, which TensorFlow's file API cannot encode
        value = FLAGS[name].value
        if any(isinstance(text, str) and any('\udc80' <= c <= '\udcff' for c in text)
               for text in (value if isinstance(value, list) else [value])):
            fail(prog, '--%s %s holds bytes that are not UTF-8, which TensorFlow cannot use in a path or name; give '
                       'it in UTF-8' % (name, ascii(value)))
    return positional


def stdout_closed():
    """Points stdout at the null device: the reader (`| head`) has gone, and what is left unwritten (Python's
    flush at exit included) must not end in a BrokenPipeError traceback."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def flag_error(prog, error, expanded=()):
    """absl's flag error as our line: what the flag expects, the flag file line it came from, and where the flags
    are described.

    Args: prog: the command (resnet_graph.train); error: the absl.flags.Error; expanded: the arguments as
    flagfiles.expand gave them (with where each came from).
    Returns: the message, without absl's ERROR prefix or Python's conversion wording.
    """
    message = ' '.join(re.sub(r'^(ERROR:+\s*)+', '', str(error)).split())
    match = re.match(r'flag --([^=\s]+)=(.*?): (.*)$', message)
    unknown = re.match(r"Unknown command line flag '([^']+)'", message)
    where = (flagfiles.origin(expanded, match.group(1), match.group(2)) if match else
             flagfiles.origin(expanded, unknown.group(1)) if unknown else '')
    flag = FLAGS[match.group(1)] if match and match.group(1) in FLAGS else None
    if flag is not None:
        name, value = match.group(1), match.group(2)
        if value == 'None' and 'must have a value other than None' in match.group(3):  # mark_flag_as_required's
            message = '--%s is required: %s' % (name, ' '.join((flag.help or '').split()))
        elif isinstance(flag.parser, flags.IntegerParser) and 'invalid literal' in match.group(3):
            message = '--%s=%s is not an integer: give a whole number' % (name, value)
        elif isinstance(flag.parser, flags.FloatParser) and 'could not convert' in match.group(3):
            message = '--%s=%s is not a number' % (name, value)
        elif flag.boolean:
            message = '--%s=%s is not true or false: give --%s or --no%s' % (name, value, name, name)
    return '%s%s; see python -m %s --help' % (message, where, prog)


def fail(prog, message):
    print('%s: error: %s' % (prog, ' '.join(str(message).split())), file=sys.stderr)
    sys.exit(2)


def _terminated(signum, frame):
    """SIGTERM's handler outside the training loop: unwinds like Ctrl-C, so a first start is undone."""
    raise errors.Terminated()


def run(prog, main, argv=None):
    """Parses the flags already defined, then calls ``main(args)`` (args: the positional arguments).

    Quiets TensorFlow's C++ logging before it loads (unless TF_CPP_MIN_LOG_LEVEL is set); --help, -h,
    --helpfull print the usage and exit 0. Exits with main's return value (0 when None); 2 on a
    ``UsageError``, a flag error, a CPU setting of config.py that is not 'auto', 'on', 'off' (or a bool), or
    an allocation TensorFlow failed (one "out of memory" line); 130 on Ctrl-C, 143 on SIGTERM. Selects
    TensorFlow's BFC CPU allocator first where ``config.CPU_BFC_ALLOCATOR`` says so, unless
    TF_CPU_ALLOCATOR_USE_BFC is set.
    """
    argv = sys.argv if argv is None else argv
    errors.COMMAND[0] = prog  # warnings name the command, as errors do
    quiet_tensorflow()
    try:
        bfc = cpu.enabled('CPU_BFC_ALLOCATOR')
        cpu.enabled('FORWARD_CONV_GRADIENTS')  # a bad value fails here, before anything runs
    except ValueError as e:
        fail(prog, e)
    if bfc:
        os.environ.setdefault(ALLOCATOR_VARIABLE, 'true')
    args = parse_flags(prog, argv)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        code = main(args)
        sys.stdout.flush()  # a closed pipe shows here rather than in Python's flush at exit
    except BrokenPipeError:  # `| head`: the reader has what it wanted; end quietly, as --help does
        stdout_closed()
        code = 0
    except UsageError as e:
        fail(prog, e)
    except KeyboardInterrupt:
        print('%s: interrupted' % prog, file=sys.stderr)
        sys.exit(130)
    except errors.Terminated:
        print('%s: stopped by SIGTERM before it finished; nothing is lost: run the same command again' % prog,
              file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except Exception as e:
        line = out_of_memory(e)
        if line is None:
            raise
        fail(prog, 'out of memory: %s; %s' % (line, memory_advice(prog, [name for name in FLAGS])))
    sys.exit(code or 0)


def memory_advice(prog, flag_names):
    """What to do after an allocation failed in command ``prog``, naming only its own flags (``flag_names``)."""
    levers = ['--' + name for name in ('batch_size', 'image_size') if name in flag_names]
    return '%sgive the process more memory%s' % ('lower %s, or ' % ' or '.join(levers) if levers else '', (
        ' (a run resumes from its last checkpoint with the same command)' if prog == 'resnet_graph.train' else ''))


MEMORY_FAILURES = ('OOM when allocating', 'could not create a primitive', 'bad_alloc')  # TensorFlow's, oneDNN's


def out_of_memory(error):
    """The line of a TensorFlow error that says an allocation failed (past the memory estimate), else None."""
    text = getattr(error, 'message', None) or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if type(error).__name__ == 'ResourceExhaustedError' or any(m in text for m in MEMORY_FAILURES):
        return next((line for line in lines if any(m in line for m in MEMORY_FAILURES)), lines[0] if lines else
                    type(error).__name__)
    return None
