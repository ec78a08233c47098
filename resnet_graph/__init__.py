"""resnet_graph: TF1-style (tf.compat.v1 graph) ResNet training on today's TensorFlow.

    from resnet_graph import ResNet
    model = ResNet(50, num_classes=10, height=32, width=32, channels=1)
"""
__all__ = ['ResNet']


def __getattr__(name):
    # Imported lazily so the command lines can reject bad flags before TensorFlow loads.
    if name == 'ResNet':
        from resnet_graph.nets.model import ResNet
        return ResNet
    raise AttributeError(name)
