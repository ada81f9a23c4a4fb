"""Training, side by side: the reference Keras example against `dae train` configs.

All contenders train in ONE process, taking turns epoch by epoch (reference epoch 1,
dae epoch 1, ..., reference epoch 2, ...), each epoch timed on its own, so background
load on a shared machine hits them all alike. The dae contenders run
`dae_cli.training.trainer.train` itself -- its tf.data pipeline, model builder, compile
settings and per-epoch checkpoint -- with one extra Keras callback that takes turns
and times; the reference is `bench/common.py`'s plain Keras example fitted on arrays.

Per epoch: training seconds (train steps only), epoch seconds (train steps, the
per-epoch validation both sides run, and dae's checkpoint write), training images/s,
and test PSNR/SSIM on the fixed noisy test set (scored between epochs, not timed).

    .venv/bin/python bench/compare.py --contender reference --contender default: \
        --contender best:configs/mnist-best.toml --epochs 30 --name train

A contender is `reference`, or `NAME:[CONFIG.toml][:key=value,key=value]` for dae.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class Baton:
    """Round-robin turns between threads: one contender trains at a time."""

    def __init__(self, order):
        self.order = list(order)
        self.turn = self.order[0]
        self.cond = threading.Condition()

    def wait(self, name):
        with self.cond:
            self.cond.wait_for(lambda: self.turn == name)

    def pass_on(self, name, finished=False):
        with self.cond:
            index = self.order.index(name)
            if finished:
                self.order.remove(name)
                self.turn = self.order[index % len(self.order)] if self.order else None
            else:
                self.turn = self.order[(index + 1) % len(self.order)]
            self.cond.notify_all()


def parse_contender(spec: str):
    if spec == "reference":
        return {"name": "reference", "kind": "reference"}
    name, _, rest = spec.partition(":")
    config_file, _, pairs = rest.partition(":")
    overrides = {}
    for pair in filter(None, pairs.split(",")):
        key, _, value = pair.partition("=")
        try:
            overrides[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key] = value
    return {"name": name, "kind": "dae", "config": config_file or None, "overrides": overrides}


def make_timer(keras, name, n_train, baton, test_noisy, test_clean, rows):
    from dae_cli.apply.metrics import psnr, ssim

    class TurnTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.test_started = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            if self.test_started is None:
                self.test_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            ended = time.perf_counter()
            # Keras' validation calls on_test_begin; dae's own validation marks its start.
            validation_started = self.test_started or getattr(self.model, "dae_validation_started", None)
            train_seconds = (validation_started or ended) - self.started
            denoised = self.model.predict(test_noisy, batch_size=500, verbose=0)
            previous = rows[-1]["cumulative_seconds"] if rows else 0.0
            row = {
                "epoch": epoch + 1,
                "train_seconds": round(train_seconds, 3),
                "epoch_seconds": round(ended - self.started, 3),
                "cumulative_seconds": round(previous + ended - self.started, 3),
                "images_per_second": round(n_train / train_seconds, 1),
                "loss": float((logs or {}).get("loss", float("nan"))),
                "test_psnr": float(psnr(test_clean, denoised).mean()),
                "test_ssim": float(ssim(test_clean, denoised).mean()),
            }
            rows.append(row)
            print(
                f"{name:>12} epoch {row['epoch']:>3}: {row['epoch_seconds']:6.2f}s "
                f"{row['images_per_second']:7.0f} img/s  PSNR {row['test_psnr']:.3f}  SSIM {row['test_ssim']:.4f}",
                flush=True,
            )
            baton.pass_on(name)
            baton.wait(name)

    return TurnTimer()


def run(contenders, epochs, limit, out_dir: Path, test_limit=None, keep_models=False):
    """Trains `contenders` taking turns; with `keep_models`, the reference's Keras model
    stays in its result under "model" (not JSON)."""
    from dae_cli.backend import keras
    from dae_cli.training import trainer as training

    x_train_u8, x_test_u8 = common.load_mnist()
    if limit:
        x_train_u8 = x_train_u8[:limit]
    if test_limit:
        x_test_u8 = x_test_u8[:test_limit]
    test_noisy, test_clean = common.noisy_test_set(x_test_u8)
    baton = Baton([c["name"] for c in contenders])
    results = {c["name"]: {**c, "epochs": [], "error": None} for c in contenders}

    def reference_worker(result):
        keras.mixed_precision.set_global_policy("float32")
        model = common.build_reference()
        x_noisy, x_clean, val_noisy, val_clean = common.reference_arrays(x_train_u8, x_test_u8)
        timer = make_timer(keras, "reference", len(x_clean), baton, test_noisy, test_clean, result["epochs"])
        model.fit(
            x_noisy,
            x_clean,
            validation_data=(val_noisy, val_clean),
            epochs=epochs or 30,
            batch_size=128,
            callbacks=[timer],
            verbose=0,
        )
        if keep_models:
            result["model"] = model

    def dae_worker(result):
        overrides = {"data": str(common.MNIST), **result["overrides"]}
        if epochs:
            overrides["epochs"] = epochs
        if limit:
            overrides["limit"] = limit
        from dae_cli.config import Config

        config = Config.resolve(result["config"], overrides)
        result["resolved_config"] = config.to_dict()
        timer = make_timer(keras, result["name"], len(x_train_u8), baton, test_noisy, test_clean, result["epochs"])
        trained = training.train(
            result["config"], overrides, out_dir / result["name"], overwrite=True, strategy="one", callbacks=[timer]
        )
        result["manifest_metrics"] = trained.manifest["metrics"]
        result["model_dir"] = str(trained.model_dir)

    def worker(result):
        baton.wait(result["name"])
        started = time.perf_counter()
        try:
            (reference_worker if result["kind"] == "reference" else dae_worker)(result)
        except Exception:
            result["error"] = traceback.format_exc()
            print(result["error"], file=sys.stderr, flush=True)
        finally:
            result["process_seconds_including_waits"] = round(time.perf_counter() - started, 1)
            baton.pass_on(result["name"], finished=True)

    threads = [threading.Thread(target=worker, args=(results[c["name"]],), daemon=True) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summarize(results)
    return results


def summarize(results):
    reference = results.get("reference")
    target = reference["epochs"][-1]["test_psnr"] if reference and reference["epochs"] else None
    ref_total = reference["epochs"][-1]["cumulative_seconds"] if target is not None else None
    for result in results.values():
        rows = result["epochs"]
        if not rows:
            continue
        summary = {
            "epochs_run": len(rows),
            "median_images_per_second": common.median([r["images_per_second"] for r in rows]),
            "median_epoch_seconds": common.median([r["epoch_seconds"] for r in rows]),
            "total_seconds": rows[-1]["cumulative_seconds"],
            "final_test_psnr": rows[-1]["test_psnr"],
            "final_test_ssim": rows[-1]["test_ssim"],
            "best_test_psnr": max(r["test_psnr"] for r in rows),
        }
        if target is not None:
            reached = next((r for r in rows if r["test_psnr"] >= target), None)
            summary["reference_final_psnr"] = target
            summary["psnr_gain_db"] = rows[-1]["test_psnr"] - target
            summary["time_to_reference_psnr"] = reached["cumulative_seconds"] if reached else None
            summary["epochs_to_reference_psnr"] = reached["epoch"] if reached else None
            summary["time_fraction_of_reference"] = reached["cumulative_seconds"] / ref_total if reached else None
            ref_ips = common.median([r["images_per_second"] for r in reference["epochs"]])
            summary["throughput_ratio"] = summary["median_images_per_second"] / ref_ips
            summary["wall_fraction_of_reference"] = summary["total_seconds"] / ref_total
            # The same two fractions from median epoch times: robust to a load spike
            # that happened to land on one contender's epoch.
            ref_median = common.median([r["epoch_seconds"] for r in reference["epochs"]])
            ref_by_medians = ref_median * len(reference["epochs"])
            summary["time_fraction_of_reference_by_medians"] = (
                reached["epoch"] * summary["median_epoch_seconds"] / ref_by_medians if reached else None
            )
            summary["wall_fraction_of_reference_by_medians"] = (
                len(rows) * summary["median_epoch_seconds"] / ref_by_medians
            )
            for gain in (0.5, 2.0):
                hit = next((r for r in rows if r["test_psnr"] >= target + gain), None)
                summary[f"time_to_reference_plus_{gain}db"] = hit["cumulative_seconds"] if hit else None
                summary[f"epochs_to_reference_plus_{gain}db"] = hit["epoch"] if hit else None
        result["summary"] = summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", action="append", required=True)
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="Epochs for every contender (default: each config's own; reference 30).",
    )
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N training images.")
    parser.add_argument("--name", default="train")
    args = parser.parse_args(argv)
    contenders = [parse_contender(spec) for spec in args.contender]
    out_dir = common.RESULTS / "models"
    results = run(contenders, args.epochs, args.limit, out_dir)
    path = common.save(
        args.name,
        {
            "machine": common.machine(),
            "argv": sys.argv,
            "epochs": args.epochs,
            "limit": args.limit,
            "contenders": results,
        },
    )
    for name, result in results.items():
        print(name, result.get("summary"), "ERROR" if result["error"] else "")
    print(f"wrote {path}")
    return 1 if any(r["error"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
