"""Where a step's time goes: the op time of one traced step (RunMetadata step stats), summed per op class."""
import re

# Op class -> the op types in it; any other op type is 'other'.
CLASSES = (
    ('convolution', ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'FusedConv2D',
                     'DepthwiseConv2dNative')),
    ('matmul', ('MatMul', 'FusedMatMul', 'BatchMatMul', 'BatchMatMulV2', 'BatchMatMulV3')),
    ('batch norm', ('FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3', 'FusedBatchNormGrad',
                    'FusedBatchNormGradV2', 'FusedBatchNormGradV3', 'FusedBatchNormEx')),
    ('pooling', ('MaxPool', 'MaxPoolGrad', 'AvgPool', 'AvgPoolGrad', 'Mean')),
    ('optimizer', ('ResourceApplyAdam', 'ApplyAdam', 'ResourceApplyMomentum', 'ResourceApplyKerasMomentum',
                   'AssignVariableOp', 'AssignSubVariableOp', 'AssignAddVariableOp', 'ReadVariableOp')),
    ('layout and copies', ('Transpose', 'Reshape', 'Pad', 'PadV2', 'ConcatV2', 'Concat', 'Slice', 'StridedSlice',
                           'StridedSliceGrad', 'Pack', 'Unpack', 'Split', 'SplitV', 'Tile', 'Identity', 'Squeeze',
                           'ExpandDims', 'ExtractImagePatches', 'GatherV2', 'UnsortedSegmentSum', 'Cast',
                           'Recv', 'Send', 'IteratorGetNext')),
    ('elementwise and reductions', ('Relu', 'ReluGrad', 'AddV2', 'Add', 'AddN', 'Mul', 'Sub', 'RealDiv', 'BiasAdd',
                                    'BiasAddGrad', 'Square', 'Rsqrt', 'Sqrt', 'Maximum', 'Minimum', 'Select',
                                    'SelectV2', 'Neg', 'Exp', 'Log', 'Softmax', 'SparseSoftmaxCrossEntropyWithLogits', 'IsFinite',
                                    'Sum', 'L2Loss')),
)
NAMES = tuple(name for name, _ in CLASSES) + ('other',)
_CLASS_OF = {op: name for name, ops in CLASSES for op in ops}
_OP_TYPE = re.compile(r'=\s*([A-Za-z0-9_]+)\(')


def op_type(node_stats):
    """The op type of one NodeExecStats, from its timeline label ``name = Type(inputs)`` (else its node name),
    less the prefixes of oneDNN's and the runtime's own kernels: _MklNativeConv2D is Conv2D, _Recv is Recv."""
    match = _OP_TYPE.search(node_stats.timeline_label)
    name = match.group(1) if match else node_stats.node_name.split(':')[0]
    return re.sub(r'^_(Mkl(Native)?)?', '', name)


def seconds_by_class(step_stats):
    """Sums the run time of every op of a traced step per op class.

    Args: step_stats: a ``StepStats`` proto (``RunMetadata.step_stats`` of a ``FULL_TRACE`` run).
    Returns: {class name: seconds}, every class of ``CLASSES`` and 'other' present; ops on several
    threads overlap, so the sum can exceed the step's wall time.
    """
    seconds = dict.fromkeys(NAMES, 0.0)
    for device in step_stats.dev_stats:
        for node in device.node_stats:
            seconds[_CLASS_OF.get(op_type(node), 'other')] += node.all_end_rel_micros / 1e6
    return seconds
