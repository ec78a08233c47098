"""resnet_graph: TF1-style (tf.compat.v1 graph) ResNet training on today's TensorFlow."""
from setuptools import find_packages, setup

setup(
    name='resnet_graph',
    version='0.1.0',
    description='TF1-style graph-mode ResNet trainer (placeholders, sessions, Saver, FileWriter) for TensorFlow 2.16+',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['resnet_graph', 'resnet_graph.*']),
    py_modules=['config', 'data_loader'],
    package_data={'resnet_graph.data': ['digits.npz']},
    install_requires=['tensorflow>=2.16', 'numpy', 'absl-py'],
    extras_require={'test': ['pytest', 'pytest-xdist', 'pillow', 'matplotlib'], 'tensorboard': ['tensorboard'],
                    'plot': ['matplotlib']},
    entry_points={'console_scripts': [
        'resnet-graph-train=resnet_graph.train:cli_main',
        'resnet-graph-evaluate=resnet_graph.evaluate:cli_main',
        'resnet-graph-predict=resnet_graph.predict:cli_main',
        'resnet-graph-export=resnet_graph.export:cli_main',
        'resnet-graph-plot=resnet_graph.plot:cli_main',
    ]},
)
