"""Every default has one home, config.RunConfig (config.TRAIN is its flag fields): the train flags, their --help,
ResNet's signature and the variants agree with it; a configuration survives config.json unchanged."""
import dataclasses
import inspect
import json
import os
import re

import pytest
from absl import flags

import config
from resnet_graph import flags as run_flags
from resnet_graph.nets import variants


def train_flag_values():
    """A FlagValues holding the train command's flags, parsed from an empty command line."""
    values = flags.FlagValues()
    saved, run_flags.FLAGS = run_flags.FLAGS, values
    try:
        with_flag_values(values, run_flags.define_train)
    finally:
        run_flags.FLAGS = saved
    values(['train'])
    return values


def test_train_flags_default_to_config():
    values = train_flag_values()
    assert set(config.TRAIN) <= set(values), sorted(set(config.TRAIN) - set(values))
    defaults = config.RunConfig()
    for name in config.TRAIN:
        assert values[name].default == config.TRAIN[name] == getattr(defaults, name), name
        # --help's "(default: ...)" is the configuration's default, as the flag prints it
        assert values[name].default_as_str == values[name]._get_parsed_value_as_string(getattr(defaults, name)), name
    assert config.RunConfig.from_flags(values) == defaults


def test_the_defaults_are_listed_once():
    # TRAIN is the dataclass's flag fields (no second list); the recorded fields are not flags.
    fields = {f.name: f for f in dataclasses.fields(config.RunConfig)}
    flag_fields = [name for name, f in fields.items() if 'record' not in f.metadata]
    assert list(config.TRAIN) == flag_fields
    assert {'num_classes', 'mean', 'std', 'class_names', 'preprocessing', 'imported'} <= set(fields) - set(flag_fields)
    assert config.TRAIN['data_roots'] == [] and config.RunConfig().data_roots is not config.RunConfig().data_roots
    # The library reads the configuration's attributes: no fallback default of its own at a read.
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'resnet_graph')
    fallbacks = []
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith('.py'):
                with open(os.path.join(directory, name)) as f:
                    text = f.read()
                fallbacks += ['%s: %s' % (name, m) for m in re.findall(r"\bcfg(?:\.get\(|\[')\w+", text)]
    assert fallbacks == []


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
    assert variants.from_config(config.RunConfig()) == variants.DEFAULTS


def test_a_configuration_round_trips_through_config_json(tmp_path):
    from resnet_graph.training.run_dir import RunDir
    run = RunDir(str(tmp_path))
    cfg = config.RunConfig.defaults(depth=18, model_dir=str(tmp_path), boundaries_epochs=[3.0, 6.0],
                                    schedule='piecewise', devices=['/cpu:0'], num_classes=10, channels=1,
                                    mean=0.25, std=0.5)
    run.save_config(cfg)
    assert run.load_config() == cfg
    saved = json.loads((tmp_path / 'config.json').read_text())
    assert set(saved) == set(config.TRAIN) | {'num_classes', 'mean', 'std'}  # the on-disk format of a trained run
    assert saved['boundaries_epochs'] == [3.0, 6.0] and saved['mean'] == 0.25 and saved['channels'] == 1


def test_old_and_imported_config_json_load_and_write_back_key_for_key(tmp_path):
    from resnet_graph.training.run_dir import RunDir
    run = RunDir(str(tmp_path))
    # An imported run: no data set, its preprocessing and class names; and a key this version does not know.
    imported = dict(config.TRAIN, depth=50, dataset=None, variant='keras', architecture='imagenet', num_classes=3,
                    channels=3, mean=[0.4, 0.5, 0.6], std=[1.0, 1.0, 1.0], class_names=['a', 'b', 'c'],
                    preprocessing='caffe', imported=dict(family='keras.applications', source='w.h5'), future_key=7)
    # A run written before the variants, --dtype and the data options: those keys are absent.
    old = dict(depth=18, dataset='digits', data_dir='', model_dir=str(tmp_path), image_size=16, batch_size=32,
               epochs=1, max_steps=0, learning_rate=0.002, learning_decay_rate=0.5, learning_decay_steps=60,
               weight_decay=0.0001, bn_momentum=0.9, num_classes=10, channels=1, mean=0.3, std=0.2)
    for record in (imported, old):
        (tmp_path / 'config.json').write_text(json.dumps(record))
        cfg = run.load_config()
        run.save_config(cfg)
        again = json.loads((tmp_path / 'config.json').read_text())
        assert {k: again[k] for k in record} == record  # every saved key written back unchanged
        assert set(again) - set(record) <= set(config.TRAIN)  # only the defaults of keys an old run lacks
    assert cfg.dtype == 'float32' and cfg.variant == 'standard' and cfg.extra == {}
    (tmp_path / 'config.json').write_text(json.dumps(imported))
    cfg = run.load_config()
    assert cfg.dataset is None and cfg.preprocessing == 'caffe' and cfg.extra == {'future_key': 7}


@pytest.mark.parametrize('name', ['mnist', 'cifar10', 'folder', 'tfrecord'])
def test_a_source_loaded_without_options_takes_the_configuration_defaults(tmp_path, name):
    # load_source's options left out are config.py's: the train command's split (split_seed, validation_fraction),
    # image size and pixel cap, whatever loads the data set (DataLoader, a library user).
    import numpy as np
    import test_sources
    from resnet_graph.data.source import load_source, source_options
    make = {'mnist': lambda: test_sources.make_mnist(tmp_path, n_train=200),
            'cifar10': lambda: test_sources.make_cifar_python(tmp_path, per_batch=100),
            'folder': lambda: test_sources.make_folder(tmp_path, per_class=20),
            'tfrecord': lambda: test_sources.make_tfrecords(tmp_path, per_file=40)}
    make[name]()
    alone = load_source(name, str(tmp_path))
    configured = load_source(name, str(tmp_path), image_size=config.TRAIN['image_size'],
                             **source_options(config.RunConfig()))
    assert len(alone.splits['validation']) > 1
    for split in ('train', 'validation', 'test'):
        np.testing.assert_array_equal(alone.splits[split], configured.splits[split], err_msg=split)
    if name in ('folder', 'tfrecord'):
        assert (alone.image_size, alone.max_pixels) == (config.TRAIN['image_size'], config.TRAIN['max_image_pixels'])
