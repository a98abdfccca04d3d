from job.environment import DeviceInfo, choose_policy, cpu_model


def test_cpu_picks_float32():
    assert choose_policy("auto", DeviceInfo("CPU", cpu_model())) == "float32"


def test_gpu_policy_follows_compute_capability():
    assert choose_policy("auto", DeviceInfo("GPU", "H200", "9.0")) == "mixed_float16"
    assert choose_policy("auto", DeviceInfo("GPU", "P100", "6.0")) == "float32"
    assert choose_policy("mixed_bfloat16", DeviceInfo("CPU", "x")) == "mixed_bfloat16"


def test_detected_device_here_is_the_cpu():
    from job.environment import detect_device, select_backend

    device = detect_device(select_backend(None))
    assert device.kind == "CPU" and device.describe().startswith("CPU ")
