"""The CNN, its training configuration, the evaluation protocol and the Ray Train loop.

Pure modules (``config``, ``data``, ``metrics``) import neither Ray nor TensorFlow; ``cnn``
is pure tf_keras; ``train_loop`` is the per-worker function for Ray Train's
TensorflowTrainer, ``checkpoints`` what it saves and restores, ``_tf_compat`` the one private
TensorFlow internal it needs (a TF 2.21 bug). ``tests/test_layers.py`` checks the layering.
"""
