"""The CPU feature the 'auto' performance settings follow (config.FORWARD_CONV_GRADIENTS, config.CPU_BFC_ALLOCATOR).

Both levers paid on the AVX2 machine of the README's Performance and gained nothing, or lost, on the two
AVX-512 machines measured since; AVX-512 is the difference between those machines that a program can read.
"""
import functools

SETTINGS = ('auto', 'on', 'off')


@functools.lru_cache(maxsize=None)
def has_avx512():
    """True when /proc/cpuinfo lists avx512f (False where it cannot be read: not Linux)."""
    try:
        with open('/proc/cpuinfo') as info:
            return any(line.startswith('flags') and 'avx512f' in line.split() for line in info)
    except OSError:
        return False


def enabled(setting, name):
    """Whether the lever ``name`` set to 'on', 'off' or 'auto' (or True / False, as config.py once had it) is
    on: 'auto' is on where the CPU lacks AVX-512. A bool; ValueError naming ``name`` for any other value."""
    if setting in (True, False):
        return setting
    if setting not in SETTINGS:
        raise ValueError('%s is %r: set it to one of %s in config.py' % (name, setting, ', '.join(map(repr, SETTINGS))))
    return setting == 'on' or (setting == 'auto' and not has_avx512())
