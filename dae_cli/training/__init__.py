"""Training: `dae train` (`trainer`), its data and `tf.data` pipelines (`data`), training
from noisy images alone (`neighbor2neighbor`) and TensorBoard logs (`tensorboard`)."""
