"""The CPU feature the 'auto' performance settings follow (config.FORWARD_CONV_GRADIENTS, config.CPU_BFC_ALLOCATOR).

Both levers pay on CPUs without AVX-512 and not on those with it (docs/performance.md); AVX-512 is the
difference a program can read.
"""
import functools

import config

SETTINGS = ('auto', 'on', 'off')


@functools.lru_cache(maxsize=None)
def has_avx512():
    """True when /proc/cpuinfo lists avx512f (False where it cannot be read: not Linux)."""
    try:
        with open('/proc/cpuinfo') as info:
            return any(line.startswith('flags') and 'avx512f' in line.split() for line in info)
    except OSError:
        return False


def enabled(name):
    """Whether the lever ``config.<name>`` is on: 'on', 'off', or 'auto' (on where the CPU lacks AVX-512); True /
    False as config.py once had them. A bool; ValueError naming the setting for any other value."""
    setting = getattr(config, name)
    if setting in (True, False):
        return setting
    if setting not in SETTINGS:
        raise ValueError('config.%s is %r: set it to one of %s in config.py'
                         % (name, setting, ', '.join(map(repr, SETTINGS))))
    return setting == 'on' or (setting == 'auto' and not has_avx512())
