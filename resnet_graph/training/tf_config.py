"""A cluster's description, TF_CONFIG, parsed into a ``Task``; the device names towers take.

Nothing here imports TensorFlow: the train command checks TF_CONFIG before it
loads, and the library (``training/towers.py``, ``training/distributed.py``)
reads the same names without the command line.
"""
import collections
import json
import os
import re

from resnet_graph.errors import UsageError, require

JOBS = ('chief', 'worker', 'ps')
DEVICE_PATTERN = re.compile(r'^/(cpu|gpu):(\d+)$', re.IGNORECASE)
_ADDRESS = re.compile(r'^[^\s:]+:\d{1,5}$')


class Task(collections.namedtuple('Task', 'cluster task_type task_index')):
    """A parsed TF_CONFIG: cluster {job: [host:port]}, this task's type and index.

    Without a ``chief`` job, worker 0 is the chief (TensorFlow's convention).
    """

    @property
    def compute_tasks(self):
        """[(job, index)] of the tasks that train, the chief first."""
        return [(job, i) for job in ('chief', 'worker') for i in range(len(self.cluster.get(job, [])))]

    @property
    def is_chief(self):
        return self.compute_tasks[0] == (self.task_type, self.task_index)

    @property
    def replica_index(self):
        """This compute task's position among compute_tasks (0 = the chief)."""
        return self.compute_tasks.index((self.task_type, self.task_index))

    @property
    def name(self):
        return 'chief' if self.task_type == 'chief' else '%s%d' % (self.task_type, self.task_index)


def parse_tf_config(text):
    """TF_CONFIG's text -> a Task, or None when it is empty. UsageError naming what is wrong."""
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise UsageError('TF_CONFIG is not valid JSON (%s); expected e.g. {"cluster": {"chief": ["host:2222"], '
                         '"ps": ["host:2223"]}, "task": {"type": "chief", "index": 0}}' % e)
    require(isinstance(value, dict) and isinstance(value.get('cluster'), dict) and isinstance(value.get('task'), dict),
            'TF_CONFIG needs two objects, "cluster" and "task"; got %s' % text.strip()[:200])
    cluster, task = value['cluster'], value['task']
    unknown = sorted(set(cluster) - set(JOBS))
    require(not unknown, 'TF_CONFIG cluster has unknown job %s; valid jobs: %s' % (', '.join(unknown), ', '.join(JOBS)))
    for job, addresses in cluster.items():
        require(isinstance(addresses, list) and addresses and all(
            isinstance(a, str) and _ADDRESS.match(a) for a in addresses),
            'TF_CONFIG cluster job %r must be a non-empty list of "host:port" strings, got %r' % (job, addresses))
    require(cluster.get('ps'), 'TF_CONFIG cluster needs a "ps" job: the parameter servers hold the variables')
    require(cluster.get('chief') or cluster.get('worker'), 'TF_CONFIG cluster needs a "chief" (or "worker") job')
    require(len(cluster.get('chief', [])) <= 1, 'TF_CONFIG cluster has %d chiefs; there is at most one'
            % len(cluster.get('chief', [])))
    task_type, index = task.get('type'), task.get('index', 0)
    require(task_type in JOBS, 'TF_CONFIG task type %r is unknown; valid: %s' % (task_type, ', '.join(JOBS)))
    require(task_type in cluster, 'TF_CONFIG task type %r has no job in the cluster (jobs: %s)'
            % (task_type, ', '.join(sorted(cluster))))
    require(isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(cluster[task_type]),
            'TF_CONFIG task index %r is out of range: job %r has %d tasks (index 0..%d)'
            % (index, task_type, len(cluster[task_type]), len(cluster[task_type]) - 1))
    return Task({job: list(cluster[job]) for job in JOBS if job in cluster}, task_type, index)


def from_environment(environ=None):
    """The Task of ``$TF_CONFIG``, or None when it is unset or empty (one machine)."""
    return parse_tf_config((os.environ if environ is None else environ).get('TF_CONFIG', ''))
