"""The one private TensorFlow internal (model/_tf_compat.py): tf.data debug mode around fit().

Pinned to TensorFlow 2.21: if these fail after an upgrade, the module moved; the fallback test
shows training then goes on without it, with one warning.
"""

from __future__ import annotations

import warnings

import pytest

from model import _tf_compat


def test_debug_mode_is_on_inside_and_restored_after():
    from tensorflow.python.data.ops import debug_mode

    before = debug_mode.DEBUG_MODE
    with _tf_compat.no_autotune_threads() as active:
        assert active is True
        assert debug_mode.DEBUG_MODE is True
    assert before == debug_mode.DEBUG_MODE


def test_restored_when_the_block_raises():
    from tensorflow.python.data.ops import debug_mode

    before = debug_mode.DEBUG_MODE
    with pytest.raises(RuntimeError), _tf_compat.no_autotune_threads():
        raise RuntimeError("fit failed")
    assert before == debug_mode.DEBUG_MODE


def test_falls_back_with_one_warning_when_the_internal_is_gone(monkeypatch):
    from tensorflow.python.data.ops import debug_mode

    monkeypatch.delattr(debug_mode, "toggle_debug_mode")
    monkeypatch.setattr(_tf_compat, "_warned", False)
    with pytest.warns(RuntimeWarning, match="tf.data debug mode is not reachable"), _tf_compat.no_autotune_threads() as active:
        assert active is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second time: silent
        with _tf_compat.no_autotune_threads() as active:
            assert active is False
