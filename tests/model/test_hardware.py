"""What a run records about its hardware, and the label the sweep report groups runs by."""

from __future__ import annotations

from model.hardware import HARDWARE_KEYS, cpu_model, hardware_label, usable_cpus, worker_hardware

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13  64-Core Processor
flags\t\t: fpu avx avx2

processor\t: 1
model name\t: AMD EPYC 7B13  64-Core Processor
"""


def test_the_cpu_model_is_read_from_cpuinfo():
    assert cpu_model(CPUINFO) == "AMD EPYC 7B13 64-Core Processor"
    assert cpu_model("processor: 0\n")  # no model name: the platform's description, never empty


def test_labels_name_the_device_and_how_many():
    cpu = {"cpu_model": "AMD EPYC 7B13", "cpus_per_worker": 1, "gpus_per_worker": 0, "workers": 2}
    assert hardware_label(cpu) == "CPU (AMD EPYC 7B13, 2 cores)"
    assert hardware_label({**cpu, "workers": 1}) == "CPU (AMD EPYC 7B13, 1 core)"
    gpu = {"cpu_model": "x", "cpus_per_worker": 4, "gpu_model": "Tesla T4", "gpus_per_worker": 1, "workers": 2}
    assert hardware_label(gpu) == "2xGPU (Tesla T4)"


def test_a_worker_describes_itself_with_tensorflow():
    import tensorflow as tf

    hardware = worker_hardware(tf, workers=2, cpus_per_worker=3)
    assert set(hardware) == set(HARDWARE_KEYS)
    assert hardware["workers"] == 2 and hardware["cpus_per_worker"] == 3
    assert hardware["cpu_model"] == cpu_model()
    assert hardware["gpus_per_worker"] == len(tf.config.list_physical_devices("GPU"))
    assert worker_hardware(tf, 1, None)["cpus_per_worker"] == usable_cpus()
