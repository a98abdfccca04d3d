from job.environment import DeviceInfo, choose_policy, cpu_model


def test_cpu_picks_float32():
    assert choose_policy("auto", DeviceInfo("CPU", cpu_model())) == "float32"


def test_gpu_policy_follows_compute_capability():
    assert choose_policy("auto", DeviceInfo("GPU", "H200", "9.0")) == "mixed_float16"
    assert choose_policy("auto", DeviceInfo("GPU", "P100", "6.0")) == "float32"
    assert choose_policy("mixed_bfloat16", DeviceInfo("CPU", "x")) == "mixed_bfloat16"


def _gpus_visible_to_the_driver() -> int:
    """GPUs as the NVIDIA driver lists them, independent of any backend: 0 where there is no driver."""
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return 0
    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    return sum(line.startswith("GPU ") for line in done.stdout.splitlines()) if done.returncode == 0 else 0


def test_the_detected_device_is_the_machines_own():
    """A GPU where the driver lists one (and the backend sees it), else the CPU: true on either machine."""
    from job.environment import detect_device, select_backend

    device = detect_device(select_backend(None))
    if device.kind == "GPU":
        assert _gpus_visible_to_the_driver() > 0 and device.describe().startswith("GPU ")
        assert choose_policy("auto", device) in ("mixed_float16", "float32")
    else:
        assert device.describe().startswith("CPU ") and choose_policy("auto", device) == "float32"
