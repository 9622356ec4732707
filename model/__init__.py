"""The CNN, its training configuration, the evaluation protocol and the Ray Train loop.

Pure modules (``config``, ``data``, ``metrics``) import neither Ray nor TensorFlow; ``cnn``
is pure tf_keras; ``train_loop`` is the per-worker function for Ray Train's
TensorflowTrainer.
"""
