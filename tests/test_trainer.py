"""The training loop in-process: the best record follows validation accuracy only."""
import os

import tensorflow as tf

import config
from resnet_graph.training import trainer as trainer_module


def tiny_config(model_dir, **overrides):
    """A config.RunConfig of a tiny run into ``model_dir`` (depth 8, 16x16, batch 32) with ``overrides``."""
    return config.RunConfig.defaults(**dict(dict(depth=8, image_size=16, batch_size=32, log_every=2,
                                                 model_dir=str(model_dir)), **overrides))


def test_best_checkpoint_changes_only_on_improvement(tmp_path, monkeypatch):
    scripted = iter([0.5, 0.7, 0.6, 0.7, 0.9])
    real_evaluate = trainer_module.evaluate_ids

    def evaluate(sess, model, loader, ids, batch_size=64):
        metrics = real_evaluate(sess, model, loader, ids, batch_size)
        if ids is loader.validation_ids:
            metrics['accuracy'] = next(scripted)
        return metrics

    monkeypatch.setattr(trainer_module, 'evaluate_ids', evaluate)
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
