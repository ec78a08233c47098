"""Data sources. Each source gives ids, labels and images by id; see ``source.Source``.

``load_source(name, data_dir)`` returns the source for a ``--dataset`` name.
"""
from resnet_graph.data.source import Source, load_source, SOURCES  # noqa: F401
