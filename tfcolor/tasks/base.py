"""The task contract: what differs between training objectives.

A :class:`Task` owns everything that depends on the objective: its input pipeline, its model
(heads on a trunk), its loss and logged terms for one replica's batch, its preview image, and the
part of the model that is "the head" (for a separate weight decay). The trainer
(:class:`tfcolor.train.trainer.Trainer`) owns everything that does not: the strategy, the replica
step and the cross-replica gradient sum, the optimizer and its schedule, weight decay, clipping,
mixed precision, checkpoints and resume, preemption, the NaN guard, summaries and progress lines.
The trainer never looks inside a batch.

This is the split of TF Model Garden's ``base_task.Task`` / ``base_trainer.Trainer``, without its
config registry.

Loss normalisation: :meth:`Task.compute_loss` returns *this replica's share of the global mean*,
i.e. the sum of its per-unit losses divided by the number of units in the **global** batch
(``tf.nn.compute_average_loss`` convention; a unit is an image for classification, a sampled point
for colorization, a labelled pixel for segmentation). Summing the gradients of every replica then
gives the gradient of the global mean, whatever the number of replicas.
"""
import abc

import tensorflow as tf


class Task(abc.ABC):
    """One training objective. Subclasses set :attr:`name` and implement the abstract methods.

    Attributes:
        name: the objective's name; its data loss is logged as ``loss/<name>`` and its extra
            terms as ``loss/<name>/<term>``.
    """

    name = "task"

    @abc.abstractmethod
    def build_model(self):
        """Returns a new ``keras.Model`` (called inside ``strategy.scope()``)."""

    @abc.abstractmethod
    def build_inputs(self, start=0):
        """Returns a ``tf.data.Dataset`` of *global* batches (dicts of tensors), repeating.

        Args:
            start: the stream position to start from (records consumed so far). Tasks whose
                batches carry ``"index"`` (each element's position in a deterministic stream)
                are resumed exactly by the trainer from a checkpointed position; tasks without it
                should ignore ``start`` (the trainer then checkpoints the iterator instead).
        """

    @abc.abstractmethod
    def compute_loss(self, model, batch, *, training, global_batch_size):
        """This replica's data loss and logged terms for one (replica) batch.

        Args:
            model: the model from :meth:`build_model`.
            batch: a dict of tensors, this replica's rows of a global batch (``"index"`` removed).
            training: passed to the model.
            global_batch_size: rows in the global batch (the normaliser's batch part).

        Returns:
            ``(loss, terms)``: a float32 scalar, this replica's share of the global mean loss
            (see the module docstring), and a dict of float32 scalars with the same
            normalisation (e.g. hue and chroma parts). The keys of ``terms`` must be the same on
            every call.
        """

    def batch_size(self, element_spec):
        """Rows in a global batch, from the dataset's element spec (static)."""
        first = tf.nest.flatten(element_spec)[0]
        return first.shape[0]

    def check_inputs(self, element_spec):
        """Raises ``ValueError`` naming what is wrong when the dataset cannot feed this task."""
        if not isinstance(element_spec, dict):
            raise ValueError(f"the dataset must yield dicts, got {element_spec}")

    def build_model_on(self, trunk):
        """Returns a new model of this task whose trunk is ``trunk`` (a
        :class:`tfcolor.models.multitask.SharedTrunk`): the task's part of a multi-task model,
        whose trunk variables are shared with the other tasks' models (called inside
        ``strategy.scope()``). Tasks that cannot share a trunk keep this default.

        Raises:
            NotImplementedError: the task has no shared-trunk model.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be trained on a shared trunk "
                                  "(it does not implement build_model_on)")

    def head_variables(self, model):
        """The variables that get the optimizer's ``head_weight_decay`` (default: ``model.head``)."""
        head = getattr(model, "head", None)
        return list(head.trainable_variables) if head is not None else []

    def preview(self, model):  # pylint: disable=unused-argument
        """An (H, W, 3) float image in [0, 1] summarising the model's output, or None."""
        return None

    def dummy_batch(self, element_spec):
        """A batch of one all-zero element (used to build the model's variables)."""
        def zeros(spec):
            return tf.zeros([1] + list(spec.shape[1:]), spec.dtype)
        return tf.nest.map_structure(zeros, {k: v for k, v in element_spec.items()
                                             if k != "index"})


def check_point_batches(element_spec, keys, what):
    """Raises ``ValueError`` when batches of sampled points lack one of ``keys`` or have no static
    batch size and number of points (``"centers"``: (B, P, 2)); ``what`` names the task."""
    missing = [k for k in keys if k not in element_spec]
    if missing:
        raise ValueError(f"{what} batches lack {missing}; got {sorted(element_spec)}")
    centers = element_spec["centers"]
    if centers.shape[0] is None or centers.shape[1] is None:
        raise ValueError("the dataset must have a static batch size and number of points "
                         f"(drop_remainder=True); got centers {centers.shape}")
