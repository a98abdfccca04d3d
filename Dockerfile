# GPU batch job: docker run --rm --gpus all -v "$PWD/reports:/reports" IMAGE
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}
# Optional extras, comma-separated: EXTRAS=ray for `job run --executor ray` (deploy/rayjob.yaml).
ARG EXTRAS=""

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    # Official TF wheels JIT-compile PTX for new GPUs (Hopper) on first use: keep that
    # cache on a mountable path so later runs skip minutes of compiling.
    CUDA_CACHE_PATH=/cache/cuda \
    CUDA_CACHE_MAXSIZE=4294967296 \
    MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/cache/keras \
    # A run lands in the mounted /reports unless --out says otherwise (job run --help lists the variables).
    JOB_OUT=/reports \
    RAY_USAGE_STATS_ENABLED=0

# Keep the base image's TensorFlow: a venv that sees system site-packages, no reinstall.
RUN python3 -m venv --system-site-packages /opt/job
WORKDIR /app
COPY pyproject.toml README.md ./
COPY job ./job
COPY examples ./examples
# A CPU-only base without TensorFlow (the CI container test) gets tensorflow-cpu; the GPU
# base's own TensorFlow is never reinstalled or upgraded.
RUN (/opt/job/bin/python -c "import tensorflow" 2>/dev/null || /opt/job/bin/pip install "tensorflow-cpu==2.21.*") && \
    /opt/job/bin/pip install ".${EXTRAS:+[$EXTRAS]}" && \
    /opt/job/bin/python -c "import tensorflow, keras, job.cli; print('tensorflow', tensorflow.__version__, 'keras', keras.__version__)"

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin job && \
    mkdir -p /reports /cache/cuda /cache/keras /tmp/matplotlib && \
    chmod 1777 /reports /cache /cache/cuda /cache/keras /tmp/matplotlib
USER 10001
ENV PATH=/opt/job/bin:$PATH
VOLUME ["/reports", "/cache"]

ENTRYPOINT ["job"]
CMD ["run"]
