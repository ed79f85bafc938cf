"""A small Keras network with a pre-ReLU "top" layer and a "task" layer, for distillation tests."""
import keras


def small_net(seed, width=8, hidden=16, name="net", channels=3):
    """Flatten -> hidden (ReLU) -> "top" (pre-ReLU, then "top_relu") -> "task" (5 logits), on
    (4, 4, channels) images; weights drawn from ``seed``."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((4, 4, channels))
    h = keras.layers.Flatten(name="flat")(x)
    h = keras.layers.Dense(hidden, name="hidden")(h)
    h = keras.layers.ReLU(name="hidden_relu")(h)
    top = keras.layers.Dense(width, name="top")(h)
    r = keras.layers.ReLU(name="top_relu")(top)
    return keras.Model(x, keras.layers.Dense(5, name="task")(r), name=name)
