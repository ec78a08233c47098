"""--flagfile, read before absl sees the command line: each file checked, and its lines put in its place.

absl reads a flag file's lines itself, but a line it cannot read (an indented ``--flagfile=``, a file that
includes itself, a directory, ``/dev/zero``) becomes a warning it skips, a cryptic flag error or a hang.
Here every file is read once, checked, and expanded in place with absl's rules (blank lines and ``#`` or
``//`` comments dropped, every other line one argument, nested ``--flagfile=`` lines expanded) except that
a line's indentation never changes what it is; absl then parses the expanded command line.
"""
import os
import stat

from resnet_graph.errors import UsageError, utf8_text

DIRECTIVES = ('--flagfile=', '-flagfile=')  # absl's forms inside a file (and --flagfile F on the command line)
MAX_BYTES = 1 << 20  # a file of --flag=value lines; more is not one (e.g. /dev/zero, a data file)
HINT = '; give a text file of --flag=value lines'
# Over the whole command line, nested --flagfile lines expanded (each inclusion counted anew): a few nested files
# that include each other many times stand for exponentially many arguments; the bounds stop the expansion early.
MAX_ARGUMENTS = 100000  # arguments read from flag files
MAX_READS = 10000  # flag files read
MAX_TOTAL_BYTES = 16 * MAX_BYTES  # bytes read from them
NESTED = ' (its nested --flagfile lines included)'


class _Budget(object):
    """What one command line's flag files have read so far; UsageError naming ``top`` (its --flagfile) past a
    bound."""

    def __init__(self):
        self.top, self.arguments, self.reads, self.bytes = None, 0, 0, 0

    def read(self, name):
        """``read(name)``, counted."""
        self.reads += 1
        if self.reads > MAX_READS:
            raise UsageError('--flagfile %s reads flag files more than %d times%s; include each flag file once'
                             % (self.top, MAX_READS, NESTED))
        text = read(name)
        self.bytes += len(text.encode('utf-8'))
        if self.bytes > MAX_TOTAL_BYTES:
            raise UsageError('--flagfile %s reads more than %d bytes of flag files%s; include each flag file once'
                             % (self.top, MAX_TOTAL_BYTES, NESTED))
        return text

    def argument(self):
        """Counts one argument read from a file."""
        self.arguments += 1
        if self.arguments > MAX_ARGUMENTS:
            raise UsageError('--flagfile %s expands to more than %d arguments%s; include each flag file once, or '
                             'give fewer flags' % (self.top, MAX_ARGUMENTS, NESTED))


def read(name):
    """The text of flag file ``name`` (a regular file or a pipe); UsageError saying why it cannot be one."""
    try:
        mode = os.stat(name).st_mode
    except OSError as e:
        raise UsageError('cannot read --flagfile %s: %s%s' % (name, e.strerror or e, HINT))
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):  # a pipe: bash's <(...)
        raise UsageError('--flagfile %s is %s, not a file%s' % (
            name, 'a directory' if stat.S_ISDIR(mode) else 'a device', HINT))
    try:
        with open(name, 'rb') as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UsageError('cannot read --flagfile %s: %s%s' % (name, e.strerror or e, HINT))
    if len(data) > MAX_BYTES:
        raise UsageError('--flagfile %s is over %d bytes: not a file of flags%s' % (name, MAX_BYTES, HINT))
    text = utf8_text(data, '--flagfile %s' % name, HINT[2:])
    if '\0' in text:  # valid UTF-8, yet binary; and a NUL inside a value would not show in the error about it
        raise UsageError('--flagfile %s holds a NUL byte (byte %d): not a text file%s'
                         % (name, data.index(b'\0'), HINT))
    return text


def _lines(name, chain, budget):
    """The arguments flag file ``name`` stands for, nested files expanded, each as (argument, (file, line number));
    ``chain``: [(real path, name)] of the files including it; ``budget``: the ``_Budget`` of the command line.
    UsageError for a file that cannot be read, that includes itself, or past the budget's bounds."""
    if not name:  # absl ignores it; a script's unset variable, whose flags would silently not apply
        raise UsageError('--flagfile%s names no file; write --flagfile=FILE, or leave it out'
                         % (' line in %s' % chain[-1][1] if chain else ''))
    real = os.path.realpath(name)
    if real in [r for r, _ in chain]:
        raise UsageError('--flagfile %s includes itself (%s); remove the circular --flagfile line'
                         % (name, ' -> '.join([n for _, n in chain] + [name])))
    budget.top = budget.top if chain else name
    arguments = []
    for number, line in enumerate(budget.read(name).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(('#', '//')):
            continue
        if line.startswith(DIRECTIVES):
            arguments += _lines(os.path.expanduser(line.split('=', 1)[1].strip()), chain + [(real, name)], budget)
        elif line in ('--flagfile', '-flagfile'):
            raise UsageError('--flagfile %s: the line %r names no file; write --flagfile=FILE' % (name, line))
        elif line.startswith('-') and len(line.split('=', 1)[0].split()) > 1:
            raise UsageError('--flagfile %s: the line %r is not --flag=value; write %s=%s' % (
                name, line, line.split()[0], line.split(None, 1)[1].strip()))
        else:
            budget.argument()
            arguments.append((line, (name, number)))
    return arguments


def expand(args):
    """Command-line ``args`` with each --flagfile (before a ``--``) replaced by the arguments of its file.

    Returns: the new list, each argument as (argument, where): where is (flag file, line number) for an argument
    read from a file, else None. Raises UsageError for a file that cannot be read or that includes itself (absl
    would skip that line with a warning and run without the flags it meant), a --flagfile without a name, or files
    that together read or stand for more than the bounds (MAX_ARGUMENTS, MAX_READS, MAX_TOTAL_BYTES).
    """
    expanded, rest, budget = [], list(args), _Budget()
    while rest:
        arg = rest.pop(0)
        if arg == '--':
            return expanded + [(a, None) for a in [arg] + rest]
        if arg in ('--flagfile', '-flagfile'):
            if not rest:
                raise UsageError('--flagfile needs a file name: --flagfile=FILE')
            expanded += _lines(os.path.expanduser(rest.pop(0)), [], budget)
        elif arg.startswith(DIRECTIVES):
            expanded += _lines(os.path.expanduser(arg.split('=', 1)[1].strip()), [], budget)
        else:
            expanded.append((arg, None))
    return expanded


def origin(expanded, flag, value=None):
    """' (line N of --flagfile F)' when flag ``flag`` (its name; with ``value``, set to it) came from a flag file
    in ``expanded`` (``expand``'s list), else ''."""
    for arg, where in expanded:
        if arg == '--':
            break
        name, _, given = arg.lstrip('-').partition('=')
        if where and arg.startswith('-') and flag in (name, name[2:] if name.startswith('no') else None) and (
                value is None or given == value):
            return ' (line %d of --flagfile %s)' % (where[1], where[0])
    return ''
