"""The one private TensorFlow internal this project uses, guarded, for a TensorFlow bug.

``no_autotune_threads``: tf.data iterators created inside get no autotune thread.

The bug (checked on TensorFlow 2.21): destroying a tf.data iterator joins its autotune thread,
and that thread can miss the wake-up (``Model::OptimizeLoop`` re-checks ``IsCancelled()``
before ``CancellationManager`` sets it), so it sleeps out its period, which doubles up to 60 s.
At the end of ``fit()`` under MultiWorkerMirroredStrategy that stalled a fold run 10-80 s with
1 CPU. We found no upstream report of this race (the nearest, tensorflow/tensorflow#21277, is
a TF 1.x hang in a tf.data destructor); it is not filed yet. The public switch
``options.autotune.enabled = False`` cannot reach the per-device datasets the strategy's
``MultiDeviceIterator`` builds with default options; tf.data's debug mode can, and TensorFlow
has a public way to turn it on (``tf.data.experimental.enable_debug_mode``) but none to turn
it off again, hence ``tensorflow.python.data.ops.debug_mode``. Our pipelines are built before
entering and have no map functions (which debug mode would run eagerly); inside, it also
drops the strategy's one-element device prefetch. It is process-global, so it is restored on
exit. If a TensorFlow upgrade removes the module, ``fit()`` runs as stock TensorFlow runs it,
with one warning. Pinned by ``tests/model/test_tf_compat.py``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

_warned = False


@contextlib.contextmanager
def no_autotune_threads() -> Iterator[bool]:
    """Inside, tf.data runs in debug mode (no autotune threads); yields whether it does."""
    global _warned
    try:
        from tensorflow.python.data.ops import debug_mode

        previous = debug_mode.DEBUG_MODE
        toggle = debug_mode.toggle_debug_mode
    except (ImportError, AttributeError) as exc:
        if not _warned:
            _warned = True
            warnings.warn(
                f"tf.data debug mode is not reachable in this TensorFlow ({exc}); training runs "
                "with autotune threads, which TF 2.21 could stall for up to a minute at the end "
                "of fit() (model/_tf_compat.py)",
                RuntimeWarning,
                stacklevel=3,
            )
        yield False
        return
    toggle(True)
    try:
        yield True
    finally:
        toggle(previous)
