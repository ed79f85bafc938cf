"""``tf.distribute`` strategies by name.

==================  ==============================================================================
name                strategy
==================  ==============================================================================
``default``         ``OneDeviceStrategy`` on the first GPU, else the first CPU (alias
``one_device``      of ``one_device``)
``mirrored``        ``MirroredStrategy`` over all GPUs; without GPUs, over all *logical* CPU
                    devices (``tf.config.set_logical_device_configuration`` splits a CPU for
                    testing), so one CPU device gives one replica
``multi_worker``    ``MultiWorkerMirroredStrategy``: the cluster comes from the ``TF_CONFIG``
                    environment variable (checked here so a malformed one fails clearly)
``tpu``             ``TPUStrategy`` on ``tpu`` (name/address; "" = local or from the environment)
==================  ==============================================================================
"""
import json
import os

import tensorflow as tf

STRATEGY_NAMES = ("default", "one_device", "mirrored", "multi_worker", "tpu")
_MIRRORED = {}


def make_strategy(name="default", *, tpu="", devices=None):
    """Returns the ``tf.distribute.Strategy`` called ``name`` (see the module docstring).

    Args:
        name: one of ``STRATEGY_NAMES``.
        tpu: TPU name or grpc address for ``name="tpu"``.
        devices: explicit device list for ``mirrored`` (overrides the automatic choice).

    Raises:
        ValueError: unknown name, malformed ``TF_CONFIG``, or no TPU reachable.
    """
    if name in ("default", "one_device"):
        gpus = tf.config.list_logical_devices("GPU")
        device = gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        # "/cpu:1", "/device:CPU:1" and "/job:localhost/replica:0/task:0/device:CPU:1" are one
        # device: normalise so that they share one strategy.
        key = tuple(_device_key(d) for d in devices)
        # One MirroredStrategy per device set and process: separate instances allocate the same
        # collective instance keys, and the runtime then mixes up their all-reduces ("Shape
        # mismatch in the collective instance ...") when several run in one process.
        if key not in _MIRRORED:
            _MIRRORED[key] = tf.distribute.MirroredStrategy(devices=list(devices))
        return _MIRRORED[key]
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise ValueError(
                f"strategy='tpu': no TPU found (tpu={tpu!r}): {e}. Run on a TPU VM or pass the "
                "TPU name/address with --tpu; use --strategy=default on CPU/GPU.") from e
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")


def _device_key(device):
    spec = tf.DeviceSpec.from_string(device)
    return (spec.job or "localhost", spec.replica or 0, spec.task or 0,
            (spec.device_type or "CPU").upper(), spec.device_index or 0)


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return  # a single worker: MultiWorkerMirroredStrategy runs locally
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        workers = cluster["worker"]
        index = int(task["index"])
        if task.get("type", "worker") not in ("worker", "chief"):
            raise ValueError(f"task type {task.get('type')!r} is not 'worker' or 'chief'")
        count = len(workers) + len(cluster.get("chief", []))
        if not 0 <= index < count:
            raise ValueError(f"task index {index} out of range for {count} workers")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"strategy='multi_worker': malformed TF_CONFIG ({e}); expected "
                         '{"cluster": {"worker": ["host:port", ...]}, '
                         '"task": {"type": "worker", "index": i}}') from e


def is_chief(strategy):
    """True on the worker that owns the outputs (the only one for single-worker strategies)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_id == 0


def worker_id(strategy):
    """``(task_type, task_id)`` of this worker, or ``("worker", 0)`` outside multi-worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return "worker", 0
    return resolver.task_type or "worker", resolver.task_id or 0
