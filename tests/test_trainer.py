"""The training loop in-process: the best record follows validation accuracy only; how checkpoints are written."""
import filecmp
import os

import tensorflow as tf

import config
from resnet_graph.training import trainer as trainer_module


def tiny_config(model_dir, **overrides):
    """A config.RunConfig of a tiny run into ``model_dir`` (depth 8, 16x16, batch 32) with ``overrides``."""
    return config.RunConfig.defaults(**dict(dict(depth=8, image_size=16, batch_size=32, log_every=2,
                                                 model_dir=str(model_dir)), **overrides))


def script_validation(monkeypatch, accuracies):
    """Makes each validation report the next of ``accuracies`` (the test split is evaluated for real)."""
    scripted = iter(accuracies)
    real_evaluate = trainer_module.evaluate_ids

    def evaluate(sess, model, loader, ids, batch_size=64):
        metrics = real_evaluate(sess, model, loader, ids, batch_size)
        if ids is loader.validation_ids:
            metrics['accuracy'] = next(scripted)
        return metrics

    monkeypatch.setattr(trainer_module, 'evaluate_ids', evaluate)


def test_best_checkpoint_changes_only_on_improvement(tmp_path, monkeypatch):
    script_validation(monkeypatch, [0.5, 0.7, 0.6, 0.7, 0.9])
    trainer = trainer_module.Trainer(tiny_config(tmp_path, max_steps=5, eval_every=1), log=lambda line: None)
    saved = []
    save_best = trainer.run.save_best
    monkeypatch.setattr(trainer.run, 'save_best', lambda record: saved.append(record) or save_best(record))
    result = trainer.train()
    assert [(r['step'], r['validation_accuracy']) for r in saved] == [(1, 0.5), (2, 0.7), (5, 0.9)]
    assert result['best']['step'] == 5 and trainer.run.load_best()['validation_accuracy'] == 0.9
    best_files = sorted(f for f in os.listdir(tmp_path / 'best') if f.endswith('.index'))
    assert best_files == ['model.ckpt-5.index']
    assert tf.train.load_variable(trainer.run.best_checkpoint(), 'global_step') == 5
    rolling = sorted(f for f in os.listdir(tmp_path) if f.startswith('model.ckpt-') and f.endswith('.index'))
    assert rolling == ['model.ckpt-%d.index' % s for s in range(1, 6)]
    assert result['test']['images'] == 269


def test_each_state_is_serialised_once_and_the_kept_checkpoints_are_whole(tmp_path, monkeypatch):
    script_validation(monkeypatch, [0.5, 0.7, 0.6, 0.7, 0.9])  # improves at steps 1, 2 and 5
    calls = dict(save=0, meta=0)
    real_save, real_export = tf.compat.v1.train.Saver.save, tf.compat.v1.train.Saver.export_meta_graph

    def save(self, *args, **kwargs):
        calls['save'] += 1
        return real_save(self, *args, **kwargs)

    def export(self, *args, **kwargs):
        calls['meta'] += 1
        return real_export(self, *args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.train.Saver, 'save', save)
    monkeypatch.setattr(tf.compat.v1.train.Saver, 'export_meta_graph', export)
    trainer = trainer_module.Trainer(tiny_config(tmp_path, max_steps=5, eval_every=1, max_to_keep=3),
                                     log=lambda line: None)
    trainer.train()
    # One serialisation per validated step (best/ at 1, 2, 5; rolling at 3, 4), one MetaGraphDef export.
    assert calls == dict(save=5, meta=1)
    run = trainer.run
    assert [os.path.basename(p) for p in run.checkpoints()] == ['model.ckpt-3', 'model.ckpt-4', 'model.ckpt-5']
    assert [os.path.basename(p) for p in run.checkpoints(run.best_dir)] == ['model.ckpt-5']
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ['model.ckpt-3', 'model.ckpt-4',
                                                                                'model.ckpt-5']
    assert os.path.basename(tf.train.get_checkpoint_state(run.best_dir).model_checkpoint_path) == 'model.ckpt-5'
    rolling, best = run.join('model.ckpt-5'), os.path.join(run.best_dir, 'model.ckpt-5')
    for suffix in ('.index', '.data-00000-of-00001', '.meta'):
        assert filecmp.cmp(rolling + suffix, best + suffix, shallow=False)
        assert os.stat(rolling + suffix).st_ino != os.stat(best + suffix).st_ino  # a copy: damage stays in one
    assert filecmp.cmp(run.join('model.ckpt-3.meta'), rolling + '.meta', shallow=False)
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:  # the legacy way back: .meta, then restore
        tf.compat.v1.train.import_meta_graph(run.join('model.ckpt-4.meta')).restore(sess, run.join('model.ckpt-4'))
        assert sess.run(tf.compat.v1.train.get_global_step()) == 4
    assert not [n for n in os.listdir(tmp_path) + os.listdir(run.best_dir) if n.startswith('.tmp-')]
