"""The tf.data switch train_loop flips around fit() (a private TensorFlow 2.21 module)."""

from __future__ import annotations


def test_no_autotune_threads_turns_tf_data_debug_mode_on_and_restores_it():
    from tensorflow.python.data.ops import debug_mode

    from model.train_loop import _no_autotune_threads

    before = debug_mode.DEBUG_MODE
    with _no_autotune_threads():
        assert debug_mode.DEBUG_MODE is True
    assert before == debug_mode.DEBUG_MODE
