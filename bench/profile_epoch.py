"""Where one epoch of Model 4 goes on this CPU: a decomposition, stage by stage.

    KERAS_BACKEND=tensorflow python bench/profile_epoch.py [--model 4] [--repeats 3]
    KERAS_BACKEND=jax python bench/profile_epoch.py

Same data as bench.py (Fashion-MNIST, 24,192 training rows, 756 steps of batch 32). Each
stage runs one whole epoch inside one compiled function over batches already in memory, so
the differences between stages are the cost of what each adds:

  matmul   the dense layers' matrix products only, forward and backward (the FLOP floor)
  forward  the model's forward pass (scaling, matmuls, SELU, softmax)
  grads    forward + loss + backward (gradients computed, not applied)
  adam     grads + Keras's Adam update (on TensorFlow: the stock update_step, about a dozen ops)
  fused    grads + the job's Adam (on TensorFlow: one ResourceApplyAdam kernel per variable)
  fit/job  model.fit, the job's settings (steps_per_execution 32, no progress bar), steady epoch
  fit/seed model.fit, the seed's settings (steps_per_execution 1, progress bar), steady epoch

Prints a table of median seconds per epoch and the dense-layer GFLOP/s each stage reaches
(forward: the forward third of the FLOPs; every other stage: forward and backward).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STEPS_BATCH = 32


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="4")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    import keras

    from bench import load_arrays
    from job.family import seed_specs
    from job.training.model import build_model, configure, scaler_from
    from job.training.optim import adam

    backend = keras.backend.backend()
    configure("float32")
    keras.utils.set_random_seed(args.seed)
    arrays, _ = load_arrays(args.seed)
    spec = next(s for s in seed_specs() if s.key == args.model)
    x, y = arrays["x_train"], arrays["y_train"].astype("int32")
    steps = len(x) // STEPS_BATCH
    x, y = x[: steps * STEPS_BATCH], y[: steps * STEPS_BATCH]
    lo, rng = scaler_from(x)
    xb = x.reshape(steps, STEPS_BATCH, -1)
    yb = y.reshape(steps, STEPS_BATCH)
    widths = [x.shape[1], *spec.hidden, 10]
    flops_step = sum(6 * STEPS_BATCH * a * b for a, b in pairwise(widths))  # fwd 2ab + bwd 4ab per row
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def new_model(optimizer=None):
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        model = build_model(spec, x.shape[1], 10, lo, rng)
        if optimizer is not None:
            optimizer.build(model.trainable_variables)
        return model

    stages = {}
    if backend == "tensorflow":
        import tensorflow as tf

        xt, yt = tf.constant(xb), tf.constant(yb)

        def epoch_fn(body):
            @tf.function
            def run():
                acc = tf.constant(0.0)
                for i in tf.range(steps):
                    acc += body(xt[i], yt[i])
                return acc

            return run

        def matmul_stage():
            ws = [tf.Variable(tf.random.normal((a, b), stddev=0.05)) for a, b in pairwise(widths)]

            def body(xs, _):
                h, hs = tf.cast(xs, tf.float32) / 255.0, []
                for w in ws:
                    hs.append(h)
                    h = h @ w
                g = h
                total = tf.constant(0.0)
                for w, hin in zip(reversed(ws), reversed(hs), strict=True):
                    total += tf.reduce_sum(tf.matmul(hin, g, transpose_a=True))  # weight gradient
                    g = tf.matmul(g, w, transpose_b=True)  # input gradient
                return total

            return epoch_fn(body)

        def forward_stage():
            model = new_model()
            return epoch_fn(lambda xs, _: tf.reduce_sum(model(xs, training=True)))

        def grads_stage(optimizer=None):
            model = new_model(optimizer)

            def body(xs, ys):
                with tf.GradientTape() as tape:
                    loss = loss_fn(ys, model(xs, training=True))
                grads = tape.gradient(loss, model.trainable_variables)
                if optimizer is None:
                    return loss + tf.add_n([tf.reduce_sum(g) for g in grads]) * 0.0
                optimizer.apply(grads, model.trainable_variables)
                return loss

            return epoch_fn(body)

        stages["matmul"] = matmul_stage
        stages["forward"] = forward_stage
        stages["grads"] = grads_stage
        stages["adam"] = lambda: grads_stage(keras.optimizers.Adam())
        stages["fused"] = lambda: grads_stage(adam())

    def fit_stage(spe: int, verbose: int):
        def make():
            model = new_model()
            model.compile(
                optimizer=adam() if spe > 1 else keras.optimizers.Adam(),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
                steps_per_execution=spe,
            )
            times = []

            class Clock(keras.callbacks.Callback):
                def on_epoch_begin(self, epoch, logs=None):
                    self.t0 = time.perf_counter()

                def on_epoch_end(self, epoch, logs=None):
                    times.append(time.perf_counter() - self.t0)

            def run():
                times.clear()
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                    model.fit(x, y, batch_size=STEPS_BATCH, epochs=2, verbose=verbose, callbacks=[Clock()])
                return times[-1]  # the steady epoch: the first one traces and compiles

            return run

        return make

    stages["fit/job"] = fit_stage(32, 0)
    stages["fit/seed"] = fit_stage(1, 1)

    results = {}
    for name, make in stages.items():
        run = make()
        fit_like = name.startswith("fit/")
        if not fit_like:
            run()  # trace and compile outside the timing
        samples = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = run()
            samples.append(out if fit_like else time.perf_counter() - t0)
        results[name] = statistics.median(samples)
        print(f"{name:9s} {results[name]:7.2f} s", file=sys.stderr, flush=True)

    print(f"Model {args.model} ({spec.hidden}), {backend}, {steps} steps of {STEPS_BATCH}, median of {args.repeats}")
    print(f"{flops_step * steps / 1e9:.0f} GFLOP per epoch in the dense layers (forward and backward)\n")
    print("| stage | s per epoch | ms per step | GFLOP/s |")
    print("|---|---|---|---|")
    for name, secs in results.items():
        rate = flops_step * steps / secs / 1e9 / (3 if name == "forward" else 1)  # forward: a third of the FLOPs
        print(f"| {name} | {secs:.2f} | {1000 * secs / steps:.2f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
