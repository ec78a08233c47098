"""Every default has one home, config.py: RunConfig (config.TRAIN is its flag fields) and COMMANDS (the other
commands' flags). The flags, their --help, ResNet's signature, the variants, the data sources and the training
recipe's functions agree with it, reading it rather than writing a value again; a configuration survives
config.json unchanged."""
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
        if attr.startswith(('DEFINE', 'mark_flag')):
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
    # bn_momentum None: the variant's own (official r1's config.CHECKPOINT_BN_MOMENTUM, else config's).
    shared = [name for name in parameters if name in config.TRAIN and name not in ('channels', 'bn_momentum')]
    assert {'depth', 'conv', 'dtype', 'variant', 'architecture', 'resnet_version', 'weight_decay'} <= set(shared)
    for name in shared:
        assert parameters[name].default == config.TRAIN[name], name
    assert parameters['bn_momentum'].default is None


# {(module file, function): {parameter: config.TRAIN key}}: library defaults that are the train command's, read
# from config.py rather than written again.
READ_FROM_CONFIG = {
    ('nets/model.py', 'ResNet.__init__'): {'weight_decay': 'weight_decay'},
    ('nets/layers.py', 'batch_norm'): {'momentum': 'bn_momentum'},
    ('training/optim.py', 'train_op'): {name: name for name in (
        'optimizer', 'momentum', 'nesterov', 'adamw_weight_decay', 'clip_gradient_norm', 'weight_decay')},
    ('training/towers.py', 'Towers.average_gradients'): {'label_smoothing': 'label_smoothing'},
    ('predict.py', 'read_image'): {'max_pixels': 'max_image_pixels'},
    ('predict.py', 'predict_files'): {'max_pixels': 'max_image_pixels'},
}
# (module file, function, parameters) whose callers always pass the run's values: no default to disagree.
REQUIRED = [
    ('training/optim.py', 'make_optimizer', ('momentum', 'nesterov')),
    ('training/optim.py', 'training_loss', ('label_smoothing',)),
    ('training/towers.py', 'gradients', ('label_smoothing',)),
    ('data/idx.py', 'load_mnist', ('validation_fraction', 'split_seed', 'channels', 'download')),
    ('data/idx.py', 'load_fashion_mnist', ('validation_fraction', 'split_seed', 'channels', 'download')),
    ('data/idx.py', 'load', ('validation_fraction', 'split_seed', 'channels')),
    ('data/cifar.py', 'load', ('validation_fraction', 'split_seed', 'channels', 'download')),
    ('data/tfrecord.py', 'load_tfrecord', ('validation_fraction', 'split_seed', 'channels', 'image_size',
                                           'max_image_pixels')),
    ('data/files.py', 'FileSource.__init__', ('channels', 'image_size', 'strict', 'max_pixels')),
    ('cluster.py', 'launch', ('grace_secs',)),
    ('import_checkpoint.py', 'checkpoint_prefix', ('depth',)),
]


def function_defaults(path, qualname):
    """{parameter: its default's expression (an ast node)} of the function ``qualname`` ('Class.method' or a
    module function) in resnet_graph/``path``."""
    import ast
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'resnet_graph')
    with open(os.path.join(root, path)) as f:
        body = ast.parse(f.read()).body
    for part in qualname.split('.'):
        node = next(n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part)
        body = node.body
    args = node.args.posonlyargs + node.args.args
    return dict(zip([a.arg for a in args[len(args) - len(node.args.defaults):]], node.args.defaults))


@pytest.mark.parametrize('path, function, parameter, key', [
    where + pair for where, pairs in READ_FROM_CONFIG.items() for pair in pairs.items()])
def test_library_defaults_are_read_from_config(path, function, parameter, key):
    import ast
    import importlib
    default = function_defaults(path, function)[parameter]
    assert not isinstance(default, ast.Constant), '%s %s(%s=%s) repeats a value of config.py' % (
        path, function, parameter, ast.unparse(default))
    module = importlib.import_module('resnet_graph.' + path[:-3].replace('/', '.'))
    target = module
    for part in function.split('.'):
        target = getattr(target, part)
    assert inspect.signature(target).parameters[parameter].default == config.TRAIN[key]


@pytest.mark.parametrize('path, function, parameters', REQUIRED)
def test_library_arguments_the_callers_always_pass_have_no_default(path, function, parameters):
    assert not set(parameters) & set(function_defaults(path, function)), (path, function)


def test_the_checkpoint_families_batch_norm_decay_is_configs(monkeypatch):
    import tensorflow as tf
    from resnet_graph.nets.model import ResNet
    from resnet_graph.serving import imported
    monkeypatch.setattr(config, 'CHECKPOINT_BN_MOMENTUM', 0.5)
    for variant in ('slim_v1', 'slim_v2', 'official_v1', 'official_v2'):
        assert imported.run_config(variant, 50, 1001, 224, '', None, 'x').bn_momentum == 0.5, variant
    assert imported.run_config('keras', 50, 1000, 224, '', None, 'x').bn_momentum == config.TRAIN['bn_momentum']
    with tf.Graph().as_default():
        assert ResNet(18, variant='official_v1', height=32, width=32, channels=3).bn_momentum == 0.5
        assert ResNet(18, height=32, width=32, channels=3).bn_momentum == config.TRAIN['bn_momentum']


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


# The commands besides train, by their flags.py define function; evaluate, predict and export add the restore group.
OTHER_COMMANDS = ('summary', 'import_keras', 'import_checkpoint', 'evaluate', 'predict', 'export', 'plot', 'benchmark')


@pytest.mark.parametrize('command', OTHER_COMMANDS)
def test_the_other_commands_flags_default_to_config(command):
    values = flags.FlagValues()
    with_flag_values(values, getattr(run_flags, 'define_' + command))
    groups = ((['restore'] if command in ('evaluate', 'predict', 'export') else [])
              + ([command] if command in config.COMMANDS else []))
    # Flags shared with train (dtype, conv, max_image_pixels, the variants) take train's defaults.
    expected = dict(config.TRAIN, fold_bn='on' if config.FOLD_BN == 'on' else 'off')
    for group in groups:
        expected.update(config.COMMANDS[group])
    assert not set().union(*[config.COMMANDS[g] for g in groups]) - set(values), command  # none left unused
    for name in values:
        if values[name].default is not None:  # None: required, or the run's own
            assert values[name].default == expected[name], (command, name)


def test_every_flag_takes_its_default_from_config():
    # No DEFINE_* writes a default again: each reads config (T[...], the command's group, a config constant).
    import ast
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'resnet_graph')
    written = []
    for name in ('flags.py', 'cluster.py'):
        with open(os.path.join(root, name)) as f:
            tree = ast.parse(f.read())
        for call in ast.walk(tree):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr.startswith('DEFINE') and call.func.attr != 'DEFINE'):
                default = call.args[1]
                if isinstance(default, ast.Constant) and default.value is not None:
                    written.append('%s:%d --%s %r' % (name, call.lineno, call.args[0].value, default.value))
    assert written == []


def test_summarize_counts_the_summary_commands_network_unless_told():
    import ast
    from resnet_graph.nets.counts import summarize
    written = function_defaults('nets/counts.py', 'summarize')
    assert not [name for name, node in written.items() if isinstance(node, ast.Constant)]
    parameters = inspect.signature(summarize).parameters
    assert {name: parameters[name].default for name in written} == {
        name: config.COMMANDS['summary'][name] for name in ('image_size', 'channels', 'num_classes')}
