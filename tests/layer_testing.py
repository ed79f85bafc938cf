"""A test harness for Keras layers and models (the idea of keras-hub's ``run_layer_test``).

Layer and model tests call :func:`run_layer_test` for the Keras plumbing every layer must get
right, and keep their own tests for what is specific (values against references)::

    import layer_testing  # tests/ is put on sys.path by the test module

    layer_testing.run_layer_test(
            L.SparseHypercolumn, {"strides": [1, 2]}, input_data=(maps, centers),
            expected_output_shape=(2, 6, 7))

It checks, for ``layer = cls(**init_kwargs)`` (``cls`` may also be a factory function returning a
layer or a functional model, e.g. ``tfcolor.models.build_trunk``):

1. **Eager call**: the layer is built, has the expected number of trainable and non-trainable
   weights, its output has ``expected_output_shape`` (a shape, or a nest of shapes matching the
   output) and float32 floats, and equals ``expected_output`` if given.
2. **Serialization**: ``get_config`` is JSON-serialisable; ``from_config`` and
   ``keras.saving.serialize_keras_object`` -> JSON -> ``deserialize_keras_object`` give an object
   of the same class with the same config which, after ``set_weights``, gives the same output.
3. **Symbolic call**: a fresh layer called on ``keras.Input`` s in a functional model; the
   symbolic output shape agrees with the eager one (batch ``None``, other axes ``None`` or equal),
   and the model with the first layer's weights gives the same output.
4. **tf.function**: the call traced in a ``tf.function`` gives the eager output.
5. **Mixed precision**, for each policy of ``dtypes`` other than float32: the layer built under
   the policy as the global policy and, for ``keras.layers.Layer`` subclasses, with
   ``dtype=policy``: every float output has the policy's compute dtype (or
   ``expected_output_dtype``, for a model whose read-out is float32 by design), every variable stays
   float32, every sublayer has the policy; with the float32 layer's weights the output equals
   the float32 output to a tolerance relative to its largest value (``mixed_precision_tolerance``)
   and a gradient step gives float32, finite gradients.
6. **Training step**: one eager SGD step on a random projection of the output (``training=True``
   when the call takes ``training``): every trainable weight gets a non-zero, finite gradient and
   changes. A layer without trainable weights must pass a finite gradient
   to at least one of its float inputs.

The global dtype policy is float32 during the checks and is restored to what it was before the
call whatever happens.

Inputs: ``input_data`` is a tuple of positional arguments, a dict of keyword arguments, or one
positional argument (an array, or a list of arrays). Array leaves (NumPy arrays, tensors) become
``keras.Input`` s in the symbolic check and ``tf.function`` arguments; other leaves (Python ints,
e.g. an image size ``(H, W)``) are passed as they are. ``call_kwargs`` are further keyword
arguments of every call (not tensors). Wrap a single tuple or dict argument in a 1-tuple.

:func:`run_serialization_test` is the serialization check alone, for any Keras-serialisable
object (losses, target builders, bin specs). :func:`global_dtype_policy` sets the global dtype
policy for a ``with`` block and restores the previous one whatever happens (for tests of what the
harness does not cover, e.g. mixed precision under a ``MirroredStrategy``).
"""
import contextlib
import copy
import inspect
import json

import keras
import numpy as np
import tensorflow as tf

DTYPES = ("float32", "mixed_float16", "mixed_bfloat16")
# Largest |mixed - float32| allowed, relative to the largest |float32 output| (float16 has an
# 11-bit significand, bfloat16 an 8-bit one; a few layers of rounding stay well inside).
MIXED_PRECISION_TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 5e-2,
                             "float16": 1e-2, "bfloat16": 5e-2}


class LayerTestResult:
    """What :func:`run_layer_test` built, for further assertions: the float32 ``layer`` and its
    eager ``output`` (before the training step changed its weights)."""

    def __init__(self, layer, output):
        self.layer = layer
        self.output = output


@contextlib.contextmanager
def global_dtype_policy(policy):
    """Makes ``policy`` (a name or ``keras.DTypePolicy``) the global dtype policy in the block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield keras.config.dtype_policy()
    finally:
        keras.config.set_dtype_policy(previous)


# ----------------------------------------------------------------------------------------------
# Nests of inputs and outputs

def _is_array(x):
    return isinstance(x, np.ndarray) or tf.is_tensor(x)


def _split(input_data):
    """(args, kwargs) of a call on ``input_data`` (see the module docstring)."""
    if isinstance(input_data, tuple):
        return tuple(input_data), {}
    if isinstance(input_data, dict):
        return (), dict(input_data)
    return (input_data,), {}


def _map_arrays(fn, structure):
    """``structure`` with every array leaf replaced by ``fn(leaf)`` (lists, tuples, dicts)."""
    if _is_array(structure):
        return fn(structure)
    if isinstance(structure, dict):
        return {k: _map_arrays(fn, v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(_map_arrays(fn, v) for v in structure)
    return structure


def _arrays(structure):
    found = []
    _map_arrays(lambda a: found.append(a) or a, structure)
    return found


def _replace_arrays(structure, values):
    values = iter(values)
    return _map_arrays(lambda _: next(values), structure)


def _flat_outputs(output):
    """The output's tensors in a fixed order (dicts by key order, as Keras keeps them)."""
    if isinstance(output, dict):
        return [t for v in output.values() for t in _flat_outputs(v)]
    if isinstance(output, (list, tuple)):
        return [t for v in output for t in _flat_outputs(v)]
    return [output]


def _shapes(output):
    """The output's shapes: a tuple per tensor, lists for sequences, dicts for dicts."""
    if isinstance(output, dict):
        return {k: _shapes(v) for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return [_shapes(v) for v in output]
    return tuple(output.shape)


def _shape_nest(expected):
    """An expected shape (or nest of shapes) in the form of :func:`_shapes`."""
    if isinstance(expected, dict):
        return {k: _shape_nest(v) for k, v in expected.items()}
    if all(d is None or isinstance(d, (int, np.integer)) for d in expected):
        return tuple(None if d is None else int(d) for d in expected)
    return [_shape_nest(v) for v in expected]


def _numpy(t):
    return np.asarray(keras.ops.convert_to_numpy(t)).astype(np.float64) if _is_float(t) else \
        np.asarray(keras.ops.convert_to_numpy(t))


def _is_float(t):
    return keras.backend.is_float_dtype(keras.backend.standardize_dtype(t.dtype))


def _accepts(fn, name):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _call(layer, input_data, call_kwargs, training=None):
    args, kwargs = _split(input_data)
    kwargs = {**kwargs, **(call_kwargs or {})}
    if training is not None and _accepts(layer.call, "training"):
        kwargs["training"] = training
    return layer(*args, **kwargs)


def _assert_outputs_close(got, want, atol, rtol, what):
    got_flat, want_flat = _flat_outputs(got), _flat_outputs(want)
    assert len(got_flat) == len(want_flat), f"{what}: {len(got_flat)} outputs, want {len(want_flat)}"
    for i, (g, w) in enumerate(zip(got_flat, want_flat)):
        np.testing.assert_allclose(_numpy(g), _numpy(w), atol=atol, rtol=rtol,
                                   err_msg=f"{what}: output {i}")


def _config_json(obj):
    config = obj.get_config()
    try:
        return json.dumps(config, sort_keys=True)
    except TypeError as e:
        raise AssertionError(f"{type(obj).__name__}.get_config() is not JSON-serialisable: "
                             f"{e}") from None


# ----------------------------------------------------------------------------------------------
# Serialization

def run_serialization_test(obj, call_args=None, atol=1e-6, rtol=1e-6):
    """``get_config``/``from_config`` and ``keras.saving`` (through JSON) round trips of ``obj``.

    Both copies must be of ``obj``'s class and have its config. With ``call_args`` (a tuple of
    positional arguments), both copies called on them give ``obj``'s output, after copying the
    weights when ``obj`` has any. Returns the two copies ``(from_config, deserialized)``.
    """
    cls = type(obj)
    config_json = _config_json(obj)
    from_config = cls.from_config(copy.deepcopy(obj.get_config()))
    assert type(from_config) is cls, f"from_config gave {type(from_config)}, want {cls}"
    assert _config_json(from_config) == config_json, "from_config(get_config()) changed the config"
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls, f"deserialize_keras_object gave {type(revived)}, want {cls}"
    assert _config_json(revived) == config_json, "serialize/deserialize changed the config"
    if call_args is not None:
        want = obj(*call_args)
        for name, clone in (("from_config", from_config), ("deserialized", revived)):
            got = clone(*call_args)
            if hasattr(obj, "get_weights") and obj.get_weights():
                clone.set_weights(obj.get_weights())
                got = clone(*call_args)
            _assert_outputs_close(got, want, atol, rtol, f"{name} copy")
    return from_config, revived


# ----------------------------------------------------------------------------------------------
# Checks of run_layer_test

def _check_eager(layer, output, expected_output_shape, expected_output, n_trainable,
                 n_non_trainable, atol, rtol):
    assert layer.built, f"{type(layer).__name__} is not built after a call"
    if n_trainable is not None:
        assert len(layer.trainable_weights) == n_trainable, (
                f"{len(layer.trainable_weights)} trainable weights, want {n_trainable}: "
                f"{[w.path for w in layer.trainable_weights]}")
    if n_non_trainable is not None:
        assert len(layer.non_trainable_weights) == n_non_trainable, (
                f"{len(layer.non_trainable_weights)} non-trainable weights, want "
                f"{n_non_trainable}: {[w.path for w in layer.non_trainable_weights]}")
    if expected_output_shape is not None:
        got, want = _shapes(output), _shape_nest(expected_output_shape)
        assert got == want, f"output shape {got}, want {want}"
    for t in _flat_outputs(output):
        if _is_float(t):
            assert keras.backend.standardize_dtype(t.dtype) == "float32", (
                    f"float32 policy: output dtype {t.dtype}")
    if expected_output is not None:
        _assert_outputs_close(output, expected_output, atol, rtol, "eager output")


def _check_symbolic(cls, init_kwargs, layer, input_data, call_kwargs, output, atol, rtol):
    fresh = cls(**init_kwargs)
    arrays = _arrays(input_data)
    inputs = [keras.Input(shape=tuple(a.shape[1:]),
                          dtype=keras.backend.standardize_dtype(a.dtype)) for a in arrays]
    symbolic = _call(fresh, _replace_arrays(input_data, inputs), call_kwargs)
    sym_flat, eager_flat = _flat_outputs(symbolic), _flat_outputs(output)
    assert len(sym_flat) == len(eager_flat), "symbolic and eager calls differ in outputs"
    for i, (s, e) in enumerate(zip(sym_flat, eager_flat)):
        s_shape, e_shape = tuple(s.shape), tuple(e.shape)
        ok = (len(s_shape) == len(e_shape) and s_shape[0] is None and all(
                a is None or a == b for a, b in zip(s_shape[1:], e_shape[1:])))
        assert ok, f"output {i}: symbolic shape {s_shape} does not fit eager shape {e_shape}"
    model = keras.Model(inputs, symbolic)
    if layer.weights:
        assert len(model.weights) == len(layer.weights), (
                f"the symbolically built layer has {len(model.weights)} weights, the eager one "
                f"{len(layer.weights)}")
        model.set_weights(layer.get_weights())
    _assert_outputs_close(model(arrays), output, atol, rtol, "functional model")


def _check_tf_function(layer, input_data, call_kwargs, output, atol, rtol):
    arrays = _arrays(input_data)

    @tf.function
    def traced(*tensors):
        return _call(layer, _replace_arrays(input_data, tensors), call_kwargs)

    _assert_outputs_close(traced(*[tf.convert_to_tensor(a) for a in arrays]), output, atol, rtol,
                          "tf.function call")


def _projection(output, seed=0):
    """Fixed random weights for every float output: the loss is sum(w * output) / size."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=tuple(t.shape)).astype("float32") / max(1, int(np.prod(t.shape)))
            for t in _flat_outputs(output)]


def _loss(output, weights):
    terms = [tf.reduce_sum(tf.cast(t, tf.float32) * w)
             for t, w in zip(_flat_outputs(output), weights) if _is_float(t)]
    assert terms, "no float output to differentiate"
    return tf.add_n(terms)


def _gradients(layer, input_data, call_kwargs, weights, inputs_too):
    """Gradients of the projected output w.r.t. the trainable weights (and float inputs)."""
    arrays = [tf.convert_to_tensor(a) for a in _arrays(input_data)]
    float_inputs = [a for a in arrays if a.dtype.is_floating] if inputs_too else []
    with tf.GradientTape() as tape:
        tape.watch(float_inputs)
        output = _call(layer, _replace_arrays(input_data, arrays), call_kwargs, training=True)
        loss = _loss(output, weights)
    grads = tape.gradient(loss, list(layer.trainable_variables) + float_inputs)
    n = len(layer.trainable_variables)
    return loss, grads[:n], grads[n:]


def _dense(g):
    return None if g is None else tf.convert_to_tensor(g)


def _check_training(layer, input_data, call_kwargs, output):
    weights = _projection(output)
    variables = list(layer.trainable_variables)
    before = [v.numpy().copy() for v in variables]
    loss, grads, input_grads = _gradients(layer, input_data, call_kwargs, weights,
                                          inputs_too=not variables)
    assert np.isfinite(loss.numpy()), f"training loss {loss.numpy()}"
    grads = [_dense(g) for g in grads]
    for v, g in zip(variables, grads):
        assert g is not None, f"no gradient for {v.path}"
        assert np.all(np.isfinite(g.numpy())), f"non-finite gradient for {v.path}"
        assert np.any(g.numpy() != 0), f"zero gradient for {v.path}"
    if variables:
        keras.optimizers.SGD(learning_rate=0.1).apply(grads, variables)
        for v, old in zip(variables, before):
            assert not np.array_equal(v.numpy(), old), f"{v.path} did not change in a training step"
    else:
        got = [_dense(g) for g in input_grads if g is not None]
        assert got, "no trainable weights and no gradient to any float input"
        assert all(np.all(np.isfinite(g.numpy())) for g in got), "non-finite input gradient"


def _check_policy(layer, policy, output, reference_layer, reference, input_data, call_kwargs,
                  tolerance, how, output_dtype):
    what = f"{policy.name} ({how})"
    want_dtype = output_dtype or policy.compute_dtype
    for t in _flat_outputs(output):
        if _is_float(t):
            assert keras.backend.standardize_dtype(t.dtype) == want_dtype, (
                    f"{what}: output dtype {t.dtype}, want {want_dtype}")
    for v in layer.weights:
        if _is_float(v):
            assert keras.backend.standardize_dtype(v.dtype) == policy.variable_dtype, (
                    f"{what}: variable {v.path} is {v.dtype}, want {policy.variable_dtype}")
    for sub in layer._flatten_layers(include_self=True):  # pylint: disable=protected-access
        if isinstance(sub, keras.layers.InputLayer):
            continue
        assert sub.dtype_policy.name == policy.name, (
                f"{what}: sublayer {sub.name} ({type(sub).__name__}) has policy "
                f"{sub.dtype_policy.name}")
    if reference_layer.weights:
        layer.set_weights(reference_layer.get_weights())
        output = _call(layer, input_data, call_kwargs)
    for i, (got, want) in enumerate(zip(_flat_outputs(output), _flat_outputs(reference))):
        if not _is_float(got):
            continue
        got, want = _numpy(got), _numpy(want)
        scale = max(float(np.abs(want).max()) if want.size else 0.0, 1e-6)
        err = float(np.abs(got - want).max()) if want.size else 0.0
        assert np.all(np.isfinite(got)), f"{what}: output {i} is not finite"
        assert err <= tolerance * scale, (
                f"{what}: output {i} differs from float32 by {err:.3g} (largest |value| "
                f"{scale:.3g}, tolerance {tolerance} relative)")


def _check_policy_gradients(layer, input_data, call_kwargs, output, policy, how):
    if not layer.trainable_variables:
        return
    _, grads, _ = _gradients(layer, input_data, call_kwargs, _projection(output), False)
    for v, g in zip(layer.trainable_variables, grads):
        assert g is not None, f"{policy.name} ({how}): no gradient for {v.path}"
        g = _dense(g)
        assert g.dtype == tf.float32, f"{policy.name} ({how}): gradient of {v.path} is {g.dtype}"
        assert np.all(np.isfinite(g.numpy())), f"{policy.name} ({how}): non-finite gradient"


def _check_mixed_precision(cls, init_kwargs, input_data, call_kwargs, reference_layer, reference,
                           dtypes, tolerances, output_dtype):
    explicit = isinstance(cls, type) and issubclass(cls, keras.layers.Layer)
    for name in dtypes:
        policy = keras.dtype_policies.get(name)
        if policy.name == "float32":
            continue
        tolerance = tolerances.get(policy.name, MIXED_PRECISION_TOLERANCE.get(policy.name, 5e-2))
        with global_dtype_policy(policy):
            layer = cls(**init_kwargs)
            output = _call(layer, input_data, call_kwargs)
            _check_policy(layer, policy, output, reference_layer, reference, input_data,
                          call_kwargs, tolerance, "global policy", output_dtype)
            _check_policy_gradients(layer, input_data, call_kwargs, output, policy,
                                    "global policy")
        if explicit:
            layer = cls(**{**init_kwargs, "dtype": policy})
            output = _call(layer, input_data, call_kwargs)
            _check_policy(layer, policy, output, reference_layer, reference, input_data,
                          call_kwargs, tolerance, "dtype argument", output_dtype)


# ----------------------------------------------------------------------------------------------

def run_layer_test(cls, init_kwargs, input_data, expected_output_shape=None,
                   expected_num_trainable_weights=None, expected_num_non_trainable_weights=None,
                   call_kwargs=None, run_training_check=True, run_mixed_precision_check=True,
                   dtypes=DTYPES, expected_output=None, run_serialization_check=True,
                   run_symbolic_check=True, mixed_precision_tolerance=None,
                   expected_output_dtype=None, atol=1e-6, rtol=1e-6):
    """Runs the checks of the module docstring on ``cls(**init_kwargs)``.

    Args:
        cls: a ``keras.layers.Layer`` or ``keras.Model`` subclass, or a function building one.
        init_kwargs: its keyword arguments.
        input_data: a tuple of positional call arguments, a dict of keyword ones, or one argument.
        expected_output_shape: the eager output's shape (a nest of shapes for nested outputs).
        expected_num_trainable_weights, expected_num_non_trainable_weights: weight counts.
        call_kwargs: further (non-tensor) keyword arguments of every call.
        run_training_check: run the training step (check 6).
        run_mixed_precision_check: run the dtype policies of ``dtypes`` (check 5).
        dtypes: dtype policy names; float32 is always the reference.
        expected_output: the eager float32 output (nest), compared with ``atol``/``rtol``.
        run_serialization_check, run_symbolic_check: checks 2 and 3.
        mixed_precision_tolerance: ``{policy name: relative tolerance}`` overriding
            :data:`MIXED_PRECISION_TOLERANCE`.
        expected_output_dtype: the float outputs' dtype under every policy, when it is not the
            policy's compute dtype by design (e.g. ``"float32"`` for a float32 read-out).
        atol, rtol: tolerances of the comparisons that should be exact up to float32 rounding.

    Returns:
        A :class:`LayerTestResult` with the float32 layer and its eager output.
    """
    init_kwargs = dict(init_kwargs or {})
    with global_dtype_policy("float32"):
        layer = cls(**init_kwargs)
        output = _call(layer, input_data, call_kwargs)
        _check_eager(layer, output, expected_output_shape, expected_output,
                     expected_num_trainable_weights, expected_num_non_trainable_weights, atol,
                     rtol)
        if run_serialization_check:
            for clone in run_serialization_test(layer):
                got = _call(clone, input_data, call_kwargs)
                if layer.weights:
                    clone.set_weights(layer.get_weights())
                    got = _call(clone, input_data, call_kwargs)
                _assert_outputs_close(got, output, atol, rtol, "serialized copy")
        if run_symbolic_check:
            _check_symbolic(cls, init_kwargs, layer, input_data, call_kwargs, output, atol, rtol)
        _check_tf_function(layer, input_data, call_kwargs, output, atol, rtol)
        if run_mixed_precision_check:
            _check_mixed_precision(cls, init_kwargs, input_data, call_kwargs, layer, output,
                                   dtypes, dict(mixed_precision_tolerance or {}),
                                   expected_output_dtype)
        if run_training_check:
            _check_training(layer, input_data, call_kwargs, output)
        return LayerTestResult(layer, output)
