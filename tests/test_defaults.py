"""Every default has one home, config.TRAIN: the train flags, ResNet's signature and the variants agree with it."""
import inspect

from absl import flags

import config
from resnet_graph import flags as run_flags
from resnet_graph.nets import variants


def test_train_flags_default_to_config():
    values = flags.FlagValues()
    saved, run_flags.FLAGS = run_flags.FLAGS, values
    try:
        with_flag_values(values, run_flags.define_train)
    finally:
        run_flags.FLAGS = saved
    names = [name for name in config.TRAIN if name in values]
    assert len(names) >= len(config.TRAIN) - 2, sorted(set(config.TRAIN) - set(values))
    for name in names:
        assert values[name].default == config.TRAIN[name], name


def with_flag_values(values, define):
    """Runs ``define`` with absl's DEFINE_* writing into ``values`` instead of the global FLAGS."""
    originals = {}
    for attr in dir(flags):
        if attr.startswith('DEFINE'):
            originals[attr] = getattr(flags, attr)
            setattr(flags, attr, _into(originals[attr], values))
    try:
        define()
    finally:
        for attr, fn in originals.items():
            setattr(flags, attr, fn)


def _into(define, values):
    def wrapped(*args, **kwargs):
        kwargs.setdefault('flag_values', values)
        return define(*args, **kwargs)
    return wrapped


def test_resnet_signature_defaults_agree_with_config():
    from resnet_graph.nets.model import ResNet
    parameters = inspect.signature(ResNet.__init__).parameters
    # channels: the flag's 0 means 'the data set's own', which a network alone has no data set to take;
    # bn_momentum None: the variant's own (official r1's 0.997, else config's).
    shared = [name for name in parameters if name in config.TRAIN
              and name not in ('weight_decay', 'channels', 'bn_momentum')]
    assert {'depth', 'conv', 'dtype', 'variant', 'architecture', 'resnet_version'} <= set(shared)
    for name in shared:
        assert parameters[name].default == config.TRAIN[name], name
    # The network alone adds no L2 term unless asked; the train command passes --weight_decay.
    assert parameters['weight_decay'].default == 0.0
    assert parameters['bn_momentum'].default is None


def test_variant_defaults_are_config_values():
    assert variants.DEFAULTS == {key: config.TRAIN[key] for key in variants.DEFAULTS}
    assert variants.from_config({}) == variants.DEFAULTS
