"""The named outputs of a classifier from its logits: shared by ``ResNet`` and the towers of ``training/towers.py``."""
import tensorflow as tf


def classifier_outputs(logits, labels, regularization_loss, num_classes):
    """The named outputs of a classifier from its logits [N, K] and int64 labels [N].

    Returns a dict of tensors: probabilities [N, K], predictions [N] (argmax), cross_entropy,
    loss (cross_entropy + regularization_loss), accuracy and top5_accuracy (scalars).
    """
    predictions = tf.argmax(logits, axis=1, name='predictions')
    cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits),
                                   name='cross_entropy')
    top5 = tf.nn.in_top_k(predictions=logits, targets=labels, k=min(5, num_classes))
    return dict(probabilities=tf.nn.softmax(logits, name='probabilities'), predictions=predictions,
                cross_entropy=cross_entropy, loss=tf.add(cross_entropy, regularization_loss, name='loss'),
                accuracy=tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32), name='accuracy'),
                top5_accuracy=tf.reduce_mean(tf.cast(top5, tf.float32), name='top5_accuracy'))
