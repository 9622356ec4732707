"""Benchmarks (not tests): each measures its baseline in the same run and prints ratios.

``python -m benchmarks.extraction`` (log-mel extraction vs the reference librosa loop),
``python -m benchmarks.training`` (Ray Train worker vs a plain tf_keras fit),
``python -m benchmarks.overhead`` (per-trial orchestration overhead vs the stock Tune + Train
pattern). Each prints the machine (``benchmarks.machine``) beside its figures.
"""
