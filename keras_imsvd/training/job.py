"""The pretrain-then-evaluate run behind `train.py`, as small steps.

`run(config)` loads the data, builds the model, trains it while `RunRecorder`
saves each finished epoch, then evaluates the encoder against a random-init
encoder and raw pixels and writes the report. Nothing is written to the output
folder before the data and the model are set up, and nothing ever outside the
files that `RunDirectory` records.
"""

import contextlib
import time

import keras
import numpy as np

from keras_imsvd import data as data_lib
from keras_imsvd import evaluation
from keras_imsvd.data._image_batches import ImageBatches
from keras_imsvd.models import IMSVDModel
from keras_imsvd.training import evaluate as evaluate_lib
from keras_imsvd.training import streaming as streaming_lib
from keras_imsvd.training.callbacks import RunRecorder
from keras_imsvd.training.config import UsageError
from keras_imsvd.training.config import published_protocol
from keras_imsvd.training.config import streams
from keras_imsvd.training.data import Data
from keras_imsvd.training.data import load_data
from keras_imsvd.training.data import make_views
from keras_imsvd.training.data import resize
from keras_imsvd.training.model import build_encoder
from keras_imsvd.training.model import build_model
from keras_imsvd.training.model import precision_policy
from keras_imsvd.training.outputs import RunDirectory
from keras_imsvd.training.plots import history_figure


@contextlib.contextmanager
def usage_errors():
    """Turns bad-input errors raised while setting up into `UsageError`s."""
    try:
        yield
    except (ValueError, TypeError, ImportError, OSError) as error:
        raise UsageError(str(error)) from error


def weights_fingerprint(model):
    """A short hash of the model's weights (float32 bytes, in order)."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


class ProcessLocalEncoder:
    """A copy of `encoder` on this process's devices, for feature extraction.

    In a multi-process JAX run the weights are arrays over the devices of
    every process, and `predict` under the distribution would treat each
    process's images as its slice of one global batch. The features are
    computed instead by a copy outside the distribution, given the current
    (replicated, so readable on every process) weights before each use.
    """

    def __init__(self, encoder):
        self.encoder = encoder
        with _no_distribution():
            self.copy = keras.models.clone_model(encoder)

    def predict(self, images, batch_size=256, verbose=0):
        with _no_distribution():
            self.copy.set_weights(self.encoder.get_weights())
            return self.copy.predict(images, batch_size=batch_size, verbose=verbose)

    def __call__(self, images):
        return self.predict(images, batch_size=len(images))


@contextlib.contextmanager
def _no_distribution():
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def _require_tensorflow():
    """Raises `UsageError` when `--explain`, which reads views through
    tf.data, cannot import TensorFlow (before anything is written)."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:
        raise UsageError(
            "explain needs TensorFlow (its views go through tf.data), which "
            f"cannot be imported ({error}); install tensorflow-cpu or leave "
            "out explain",
            field="explain",
        ) from None


class Job:
    """One run: `Job(config, log).run()` returns the metrics it wrote."""

    def __init__(self, config, log=print):
        self.config = config
        self._log = log
        self.scope = None
        self.run_dir = RunDirectory(config.output_dir)

    def log(self, message):
        """Logs on the chief only: one process speaks for a multi-process run."""
        if self.run_dir.chief:
            self._log(message)

    @property
    def verbose(self):
        return self.config.verbose if self.run_dir.chief else 0

    def run(self):
        started = time.time()
        with contextlib.ExitStack() as stack:
            if self.config.distribute == "data-parallel":
                from keras_imsvd import distribute

                self.scope = stack.enter_context(distribute.data_parallel())
                self.run_dir.chief = self.scope.is_chief
                self.run_dir.collective_saves = (
                    self.scope.backend == "jax" and self.scope.num_processes > 1
                )
            model, data, images, history = self.train()
            encoder = self.feature_encoder(model)
        train_seconds = time.time() - started
        # Outside the distribution: each process evaluates the whole held-out
        # set with the same (synchronised) weights, so all print one result.
        results, notes = self.evaluate(encoder, data, *images)
        metrics = {
            "backend": keras.backend.backend(),
            "keras_version": keras.__version__,
            "config": self.config.training_settings(),
            "results": results,
            "evaluation": evaluate_lib.evaluation_settings(
                self.config, len(data.x_train)
            ),
            "notes": notes,
            "final_loss": {k: v for k, v in history[-1].items() if k.endswith("loss")},
            "epochs_trained": len(history),
            "seconds": round(time.time() - started, 1),
            "train_seconds": round(train_seconds, 1),
        }
        self.run_dir.write_json("metrics.json", metrics)
        if self.config.explain:
            self.explain(model, data, images[1])
        self.log(f"done in {metrics['seconds']} s; outputs in {self.config.output_dir}")
        if self.scope is not None and self.scope.num_processes > 1:
            # Every process says which weights it ended with: one fingerprint
            # on all of them shows that the replicas stayed in step.
            self._log(
                f"process {self.scope.process_index} of {self.scope.num_processes} "
                f"finished; weights fingerprint {weights_fingerprint(model)}"
            )
        return metrics

    def train(self):
        """Sets up and fits; returns the model, the data, the evaluation images
        at the view size, and the history."""
        config = self.config
        if self.run_dir.chief:
            mode = self.run_dir.check(config)
        else:
            # The chief checks (and may create) the folder; the others only
            # read the checkpoints it wrote.
            mode = "resume" if config.resume else "new"
        if config.explain:
            _require_tensorflow()
        keras.utils.set_random_seed(config.seed)
        if config.mixed_precision:
            keras.config.set_dtype_policy(precision_policy(config.mixed_precision))
        with usage_errors():
            streamed = streams(config)
            data = (
                streaming_lib.load_streamed(config) if streamed else load_data(config)
            )
            dataset = self.training_dataset(data)
        steps_per_epoch = len(data.x_train) // config.batch_size
        shape = self.image_shape(data)
        self.log(
            f"backend {keras.backend.backend()}: {len(data.x_train)} training and "
            f"{len(data.x_test)} held-out images of shape {shape}, "
            f"{steps_per_epoch} steps per epoch"
        )
        if streamed:  # a subset in memory for the kNN monitor and --explain
            train, test = streaming_lib.monitor_images(config, data)
            self.monitor = Data(*train, *test)
            images = (self.monitor.x_train, self.monitor.x_test)
        else:
            self.monitor = data
            images = (
                resize(data.x_train, config.image_size),
                resize(data.x_test, config.image_size),
            )
        with usage_errors():
            model = build_model(
                config, shape, steps_per_epoch, data_shape=data.x_train.shape[1:]
            )
        try:
            self.run_dir.open(config, mode)
        except OSError as error:
            raise UsageError(f"output_dir: {error}", field="output_dir") from None
        history = self.fit(
            model,
            dataset,
            mode,
            (images[0], self.monitor.y_train),
            (images[1], self.monitor.y_test),
        )
        self.run_dir.save_model("model.keras", model)
        self.run_dir.save_model("encoder.keras", model.encoder)
        self.plot(history)
        return model, data, images, history

    def feature_encoder(self, model):
        """The encoder to take features from: a local copy across processes."""
        scope = self.scope
        if scope is not None and scope.backend == "jax" and scope.num_processes > 1:
            return ProcessLocalEncoder(model.encoder)
        return model.encoder

    def image_shape(self, data):
        return (self.config.image_size, self.config.image_size, data.x_train.shape[-1])

    def training_dataset(self, data):
        config = self.config
        if isinstance(data, streaming_lib.StreamedData):
            # Made into a dataset in fit, which knows the epoch to start at.
            # On JAX and PyTorch each process reads its own share of the files.
            scope, shards = self.scope, (1, 0)
            if scope is not None and scope.backend != "tensorflow":
                shards = (scope.num_processes, scope.process_index)
            views = make_views(config, 3)
            return streaming_lib.training_stream(config, data, views, *shards)
        if config.augment_on == "device":
            return self.image_batches(data)
        views = make_views(config, data.x_train.shape[-1])
        dataset = data_lib.multiview_dataset(
            data.x_train, views=views, batch_size=config.batch_size, seed=config.seed
        )
        if self.scope is not None:
            dataset = self.scope.distribute_dataset(dataset)
        return dataset

    def image_batches(self, data):
        """Plain batches from memory; the model makes the views on the device."""
        if self.scope is not None and self.scope.num_processes > 1:
            raise UsageError(
                "augment_on device reads whole batches in one process; with "
                f"{self.scope.num_processes} processes use augment_on data",
                field="augment_on",
            )
        return ImageBatches(
            data.x_train, batch_size=self.config.batch_size, seed=self.config.seed
        )

    def tensorboard(self):
        """The TensorBoard callback of the chief, if TensorFlow can be imported."""
        if not self.run_dir.chief:
            return None
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            self.log("TensorFlow cannot be imported: no TensorBoard logs")
            return None
        return keras.callbacks.TensorBoard(self.run_dir.join("logs"))

    def fit(self, model, dataset, mode, train_data, test_data):
        config = self.config
        initial_epoch, history = 0, []
        if mode == "resume":
            initial_epoch, history = self.run_dir.restore_latest_state(model, self.log)
        if initial_epoch >= config.epochs:
            self.log(f"all {config.epochs} epochs were already trained")
            return history
        monitor_size = min(len(train_data[0]), 10_000)
        callbacks = [
            evaluation.KNNMonitor(
                (train_data[0][:monitor_size], train_data[1][:monitor_size]),
                test_data,
                every=config.eval_every,
                feature_fn=self.feature_encoder(model),
            ),
            self.tensorboard(),
            RunRecorder(self.run_dir, history),
        ]
        if self.scope is not None:
            from keras_imsvd import distribute

            callbacks.insert(0, distribute.SynchronizeReplicas())
        recorder, steps_per_epoch = callbacks[-1], None
        if isinstance(dataset, data_lib.StreamingViews):
            # An endless stream; epoch e reads the order of (seed, e).
            callbacks.insert(-1, dataset.callback(self.log))
            steps_per_epoch = dataset.steps_per_epoch
            sharded = dataset.num_shards > 1
            dataset = dataset.dataset(initial_epoch)
            if sharded and self.scope.backend == "jax":
                # Each process feeds its own rows; Keras assembles the batch.
                self.scope.distribution.auto_shard_dataset = False
            elif self.scope is not None and not sharded:
                dataset = self.scope.distribute_dataset(dataset)
        model.fit(
            dataset,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=[c for c in callbacks if c is not None],
            verbose=self.verbose,
            shuffle=False,  # the dataset shuffles itself
        )
        return recorder.history

    def plot(self, history):
        import matplotlib.pyplot as plt

        if not history:
            return
        figure = history_figure(history, self.config.bin_size)
        self.run_dir.save_figure("loss_curves.png", figure, dpi=110)
        plt.close(figure)

    def evaluate(self, encoder, data, train_images, test_images):
        config, shape = self.config, self.image_shape(data)
        few, notes = evaluate_lib.evaluation_plan(
            data.y_train, data.y_test, config.seed
        )
        if "all" in notes:
            self.log(f"warning: {notes['all']}")
            self.run_dir.write_text("results.txt", notes["all"] + "\n")
            return {}, notes
        for note in notes.values():
            self.log(f"note: {note}")
        keras.utils.set_random_seed(config.seed + 1)
        random_encoder = build_encoder(config.architecture, shape)
        verbose = 1 if self.verbose == 1 else 0
        encoders = {"IMSVD (learned)": encoder, "random init": random_encoder}
        if isinstance(data, streaming_lib.StreamedData):
            return self.evaluate_streamed(encoders, data, few, verbose), notes
        if config.eval_protocol == "published":
            images = (train_images, test_images)
            return self.evaluate_published(encoders, data, images, verbose), notes
        results = {}
        names = [*encoders, "raw pixels"]
        for index, name in enumerate(names, start=1):
            self.log(f"evaluating {index}/{len(names)}: {name} (kNN, linear probes)")
            if name in encoders:
                train, test = (
                    evaluation.extract_features(encoders[name], x, 256, verbose=verbose)
                    for x in (train_images, test_images)
                )
            else:
                train, test = data.x_train, data.x_test
            results[name] = evaluate_lib.evaluate_features(
                evaluate_lib.as_features(name, train),
                data.y_train,
                evaluate_lib.as_features(name, test),
                data.y_test,
                few,
                config.probe_epochs,
                config.seed,
            )
        self.write_results(results, len(train_images))
        return results, notes

    def evaluate_published(self, encoders, data, images, verbose):
        """The kNN of the learned and random-init encoders and the raw pixels,
        and the published linear evaluation of the learned encoder (it costs
        `eval_epochs` passes of the encoder over the training images)."""
        names = [*encoders, "raw pixels"]
        protocol = published_protocol(self.config)
        results = {}
        for index, name in enumerate(names, start=1):
            linear = name == names[0]
            what = f"kNN, published {protocol} linear evaluation" if linear else "kNN"
            self.log(f"evaluating {index}/{len(names)}: {name} ({what})")
            encoder = encoders.get(name)
            pairs = (
                [evaluation.extract_features(encoder, x, 256, verbose) for x in images]
                if encoder is not None
                else (data.x_train, data.x_test)
            )
            features = [evaluate_lib.as_features(name, x) for x in pairs]
            results[name] = evaluate_lib.published_evaluation(
                encoder,
                features,
                images,
                (data.y_train, data.y_test),
                self.config,
                verbose,
                linear,
            )
        self.write_results(results, len(images[0]))
        return results

    def evaluate_streamed(self, encoders, data, few, verbose):
        """kNN and linear probes on features streamed from the files into
        arrays or memmaps; the raw pixels of data streamed from disk are not held.
        With the published protocol, the kNN and, for the learned encoder, the
        published linear evaluation reading the files again each epoch."""
        config, results = self.config, {}
        published = config.eval_protocol == "published"
        self.log("note: raw pixels are not evaluated on data streamed from disk")
        for index, (name, encoder) in enumerate(encoders.items(), start=1):
            linear = published and index == 1
            what = f", published {published_protocol(config)} linear evaluation"
            self.log(
                f"evaluating {index}/{len(encoders)}: {name} "
                f"(streamed{what if linear else ''})"
            )
            (train, y_train), (test, y_test) = (
                streaming_lib.features(config, encoder, x.files, y, verbose)
                for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test))
            )
            if published:
                results[name] = evaluate_lib.published_evaluation(
                    encoder,
                    [streaming_lib.checked(name, x) for x in (train, test)],
                    (data.x_train.files, data.x_test.files),
                    (y_train, y_test),
                    config,
                    verbose,
                    linear,
                    image_labels=(data.y_train, data.y_test),
                )
                continue
            if len(y_train) != len(data.y_train):  # unreadable files were skipped
                few = evaluate_lib.evaluation_plan(y_train, y_test, config.seed)[0]
            results[name] = evaluate_lib.evaluate_features(
                streaming_lib.checked(name, train),
                y_train,
                streaming_lib.checked(name, test),
                y_test,
                few,
                config.probe_epochs,
                config.seed,
            )
        self.write_results(results, len(data.x_train))
        return results

    def write_results(self, results, num_train):
        """Prints the table and writes it to results.txt under the protocol."""
        table = evaluate_lib.format_table(results)
        record = evaluate_lib.evaluation_settings(self.config, num_train)
        if self.run_dir.chief:
            print(table, flush=True)
        text = evaluate_lib.describe(record) + "\n\n" + table + "\n"
        self.run_dir.write_text("results.txt", text)

    def explain(self, model, data, test_images):
        from keras_imsvd import explain

        if not self.run_dir.chief:
            return  # the figures are the chief's output alone
        if isinstance(data, streaming_lib.StreamedData):
            data = self.monitor  # the held-out subset in memory
        config, shape = self.config, self.image_shape(data)
        self.log("writing explainability figures and explain.json")
        keras.utils.set_random_seed(config.seed + 1)
        untrained = IMSVDModel(
            build_encoder(config.architecture, shape),
            projector=config.projector,
            bin_size=config.bin_size,
            temperature=config.temperature,
        )
        views = make_views(config, shape[-1])
        held_out_views = data_lib.multiview_dataset(
            data.x_test,
            views=views,
            batch_size=min(256, len(data.x_test)),
            shuffle=False,
            seed=config.seed,
            drop_remainder=False,
        )
        with self.run_dir.writing_new_files():
            explain.save_explain_report(
                model,
                test_images,
                data.y_test,
                multiview_ds=held_out_views,
                output_dir=config.output_dir,
                reference=untrained,
            )
