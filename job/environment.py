"""Which backend, device and precision policy a run uses, and the versions behind it.

Everything here is read lazily so that `job report` and `job check-data` never
import a deep-learning framework.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
BACKENDS = ("tensorflow", "jax")
DEFAULT_BACKEND = "tensorflow"  # the one place it is named: `select_backend` falls back to it
MIN_FP16_CAPABILITY = (7, 0)  # tensor cores for float16 arrived with Volta


@dataclass
class DeviceInfo:
    kind: str  # "GPU" or "CPU"
    name: str
    compute_capability: str | None = None

    def describe(self) -> str:
        if self.kind == "GPU":
            return f"GPU {self.name} (compute capability {self.compute_capability})"
        return f"CPU {self.name}"


def select_backend(backend: str | None) -> str:
    """Set KERAS_BACKEND before Keras is imported; TensorFlow stays the default."""
    if backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND) != backend:
            log.warning("Keras already imported with another backend; --backend %s may not apply", backend)
        os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep docker logs to our own lines
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    return os.environ["KERAS_BACKEND"]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def detect_device(backend: str) -> DeviceInfo:
    """The first accelerator the backend sees, else the CPU."""
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                cc = details.get("compute_capability")
                return DeviceInfo("GPU", details.get("device_name", gpus[0].name), _cc(cc))
        elif backend == "jax":
            import jax

            dev = jax.devices()[0]
            if dev.platform == "gpu":
                return DeviceInfo("GPU", dev.device_kind, getattr(dev, "compute_capability", None))
    except Exception as exc:  # a broken driver must not stop a CPU run
        log.warning("could not query the accelerator (%s); assuming CPU", exc)
    return DeviceInfo("CPU", cpu_model())


def _cc(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        return ".".join(str(v) for v in value)
    return str(value)


def choose_policy(requested: str, device: DeviceInfo) -> str:
    """`auto`: mixed float16 on a GPU with compute capability >= 7.0, float32 otherwise."""
    if requested != "auto":
        return requested
    if device.kind == "GPU" and device.compute_capability:
        major, _, minor = device.compute_capability.partition(".")
        if (int(major), int(minor or 0)) >= MIN_FP16_CAPABILITY:
            return "mixed_float16"
    return "float32"


def versions(backend: str) -> dict[str, str | None]:
    """Versions of what produced the numbers; CUDA and cuDNN where the build says."""
    import keras

    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
        "numpy": installed_version("numpy"),
        "tensorflow": installed_version("tensorflow"),
        "jax": installed_version("jax"),
        "cuda": None,
        "cudnn": None,
    }
    if backend == "tensorflow":
        import tensorflow as tf

        build = tf.sysconfig.get_build_info()
        out["cuda"] = build.get("cuda_version")
        out["cudnn"] = build.get("cudnn_version")
    elif backend == "jax":
        try:
            import jax

            backend_obj = jax.extend.backend.get_backend() if hasattr(jax, "extend") else None
            if backend_obj is not None and backend_obj.platform == "gpu":
                out["cuda"] = str(getattr(backend_obj, "platform_version", None))
        except Exception:
            pass
    return out


def installed_version(dist: str) -> str | None:
    """The installed version of a distribution (TensorFlow's CPU-only wheel counts as tensorflow); None if absent."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        if dist == "tensorflow":
            try:
                return version("tensorflow-cpu")
            except PackageNotFoundError:
                return None
        return None


def device_dict(device: DeviceInfo) -> dict:
    return asdict(device) | {"description": device.describe()}
