"""The ``resnet-ft`` command line: parse, call the library, render.

Commands import TensorFlow lazily, inside their bodies, so ``resnet-ft --help``
stays fast. Every expected failure is a :class:`~resnet_ft.errors.ResnetFtError`
rendered as one ``error:`` line with its exit code (0 ok, 1 runtime failure,
2 usage/input error, 130 interrupted); ``--debug`` or ``RESNET_FT_DEBUG=1``
shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from resnet_ft.checkpoints import FORMAT_EXAMPLES
from resnet_ft.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, ResnetFtError

app = typer.Typer(
    name="resnet-ft",
    help="Transfer learning with ResNet on TensorFlow/Keras 3.\n\n"
    "convert a checkpoint -> train a head on a folder of images -> predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

#: Commands that need TensorFlow; the others (and --help) start without importing it.
TENSORFLOW_COMMANDS = frozenset({"convert", "summary", "train", "predict", "evaluate", "export"})

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]


@app.command(
    epilog="Accepted formats, with an example each:\n\n"
    + "\n\n".join(f"  {what}:\n\n    {example}" for what, example in FORMAT_EXAMPLES)
)
def convert(
    src: Annotated[
        Path,
        typer.Argument(help="Checkpoint: TF-slim prefix/.index/directory, keras.applications "
                       ".h5 or Keras 3 .weights.h5, or a torchvision/timm .safetensors/.pth "
                       "state dict."),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output backbone .keras file.")],
    depth: Annotated[
        int | None, typer.Option(help="Expected depth (50, 101, 152); detected when omitted.")
    ] = None,
    include_top: Annotated[
        bool, typer.Option(help="Keep the ImageNet classifier as a second output (logits).")
    ] = False,
) -> None:
    """Convert a pretrained checkpoint into a Keras backbone that computes exactly the same."""
    from resnet_ft.convert import convert as run_convert
    from resnet_ft.reporting import console

    if out.suffix != ".keras":
        raise _usage(f"output must end in .keras: {out}")
    spec = run_convert(src, out, depth=depth, include_top=include_top)
    top = f", with {spec.num_classes}-way classifier" if spec.include_top else ""
    console().print(f"wrote {out} (ResNet-{spec.depth}, {spec.family} family{top})")


@app.command(
    epilog="Examples:\n\n  resnet-ft summary backbone.keras\n\n"
    "  resnet-ft summary runs/flowers --json"
)
def summary(
    model: Annotated[
        Path, typer.Argument(help="Backbone .keras file or training run directory.")
    ],
    json_output: JsonFlag = False,
) -> None:
    """Trainable vs frozen parameter counts, per stage."""
    from resnet_ft.reporting import console, print_json, summary_table
    from resnet_ft.summary import summarize_path

    result = summarize_path(model)
    if json_output:
        print_json(result.to_dict())
    else:
        console().print(summary_table(result))


@app.command(
    epilog="Examples:\n\n"
    "  resnet-ft train flower_photos --backbone backbone.keras -o runs/flowers\n\n"
    "  resnet-ft train --config examples/flowers/config.yaml -o runs/flowers --epochs 5\n\n"
    "  resnet-ft train --config runs/flowers/config.yaml -o runs/flowers --resume"
)
def train(
    out: Annotated[Path, typer.Option("-o", "--out", help="Run directory to write.")],
    data_dir: Annotated[
        Path | None, typer.Argument(help="Class-per-folder images (or data_dir in --config).")
    ] = None,
    backbone: Annotated[Path | None, typer.Option(help="Backbone .keras from convert.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML file with any of these options.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs [20].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size [16].")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate [2e-4].")] = None,
    image_size: Annotated[int | None, typer.Option(help="Input size in pixels [224].")] = None,
    resize: Annotated[
        str | None, typer.Option(help="crop (centre crop) or squash [crop].")
    ] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout rate in the head [0.5].")] = None,
    head_units: Annotated[int | None, typer.Option(help="Hidden Dense units [1024].")] = None,
    val_split: Annotated[float | None, typer.Option(help="Validation fraction [0.1].")] = None,
    val_dir: Annotated[Path | None, typer.Option(help="Separate validation folder.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed [0].")] = None,
    augment: Annotated[
        str | None,
        typer.Option(help="Augmentations, comma-separated: flip, crop, rotate, zoom, color "
                     "[flip]. Only flip keeps the feature cache."),
    ] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No augmentation.")] = False,
    trainable: Annotated[
        str | None,
        typer.Option(help="What trains: head, or unfreeze from block4|block3|block2|block1|all "
                     "to the top [head]."),
    ] = None,
    train_bn: Annotated[
        bool | None, typer.Option("--train-bn", help="Update BN statistics of unfrozen stages.")
    ] = None,
    head_epochs: Annotated[
        int | None, typer.Option(help="Phase-1 head epochs before unfreezing [5].")
    ] = None,
    fine_tune_lr: Annotated[
        float | None, typer.Option(help="Phase-2 peak learning rate [lr/10].")
    ] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="Label smoothing [0].")] = None,
    class_weight: Annotated[
        str | None, typer.Option(help="none or balanced (weights n / (classes * n_c)) [none].")
    ] = None,
    optimizer: Annotated[str | None, typer.Option(help="adam, sgd or adamw [adam].")] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="Decoupled weight decay [0].")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="auto, one-device, mirrored (all local GPUs) or multi-worker "
                     "(TF_CONFIG) [auto]. --batch-size is per replica."),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(help="float32, mixed_float16 (recommended on GPUs) or mixed_bfloat16 "
                     "[float32]."),
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Feature cache directory.")] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run the backbone every epoch (slow baseline).")
    ] = False,
    early_stopping: Annotated[
        int | None, typer.Option(help="Stop after N epochs without val_loss improvement.")
    ] = None,
    strict: Annotated[
        bool | None, typer.Option("--strict", help="Undecodable images are an error.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty run directory.")] = False,
) -> None:
    """Fine-tune a new head on a frozen backbone over a class-per-folder image set."""
    from resnet_ft.config import load_yaml, make_config
    from resnet_ft.reporting import console
    from resnet_ft.training import train as run_train

    layers = [load_yaml(config)] if config else []
    if resume and not config and (out / "config.yaml").is_file():
        layers = [load_yaml(out / "config.yaml")]
    cli_layer = {
        "data_dir": data_dir, "backbone": backbone, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "image_size": image_size, "resize": resize, "dropout": dropout,
        "head_units": head_units, "val_split": val_split, "val_dir": val_dir, "seed": seed,
        "augment": "none" if no_augment else augment, "cache_dir": cache_dir,
        "cache": False if no_cache else None, "early_stopping": early_stopping,
        "strict": strict, "trainable": trainable, "train_bn": train_bn,
        "head_epochs": head_epochs, "fine_tune_lr": fine_tune_lr,
        "label_smoothing": label_smoothing, "class_weight": class_weight,
        "optimizer": optimizer, "weight_decay": weight_decay, "precision": precision,
        "strategy": strategy,
    }
    resolved = make_config(*layers, {k: v for k, v in cli_layer.items() if v is not None})
    result = run_train(resolved, out, resume=resume, overwrite=overwrite, console=console())
    metrics = result.metrics
    console().print(
        f"best epoch {metrics['best_epoch']}: val_accuracy {metrics['accuracy']:.4f}, "
        f"val_loss {metrics['val_loss']:.4f}; model written to {result.run_dir / 'model.keras'}"
    )


@app.command(
    epilog="Examples:\n\n  resnet-ft predict runs/flowers photo.jpg\n\n"
    "  resnet-ft predict runs/flowers 'photos/*.jpg' --top-k 3 --json\n\n"
    "  resnet-ft predict backbone.keras cat.jpg --labels imagenet_labels.txt"
)
def predict(
    run: Annotated[Path, typer.Argument(help="Run directory (or an --include-top backbone).")],
    images: Annotated[list[str], typer.Argument(help="Image files, directories or globs.")],
    top_k: Annotated[int, typer.Option(min=1, help="How many classes to list.")] = 5,
    json_output: JsonFlag = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="Print CSV rows.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 32,
    labels: Annotated[
        Path | None, typer.Option(help="Class names, one per line, for an ImageNet backbone.")
    ] = None,
) -> int:
    """Classify images with a trained model; exit 1 when any file could not be read."""
    from resnet_ft.predict import collect_images, load_predictor, predict_files
    from resnet_ft.reporting import console, predictions_csv, predictions_table, print_json

    if json_output and csv_output:
        raise _usage("choose one of --json and --csv")
    predictor = load_predictor(run, labels)
    results = predict_files(predictor, collect_images(images), top_k=top_k, batch_size=batch_size)
    if json_output:
        print_json(results)
    elif csv_output:
        sys.stdout.write(predictions_csv(results))
    else:
        console().print(predictions_table(results))
    failed = [r for r in results if "error" in r]
    for row in failed:
        sys.stderr.write(f"error: {row['file']}: {row['error']}\n")
    return 1 if failed else 0


@app.command(
    epilog="Examples:\n\n  resnet-ft evaluate runs/flowers data/test\n\n"
    "  resnet-ft evaluate runs/flowers data/test --json -o reports/test"
)
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    data_dir: Annotated[Path, typer.Argument(help="Class-per-folder images, same classes.")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Report folder [RUN/eval/<name>].")
    ] = None,
    top_k: Annotated[int, typer.Option(min=1, help="k of top-k accuracy.")] = 5,
    json_output: JsonFlag = False,
    model: Annotated[
        Path | None,
        typer.Option(help="An exported SavedModel or .tflite to evaluate instead of RUN's model."),
    ] = None,
) -> None:
    """Accuracy, per-class precision/recall/F1 and confusion matrix of a run on a dataset."""
    import csv
    import io
    import json

    from resnet_ft.atomic import write_text
    from resnet_ft.export import load_exported
    from resnet_ft.plots import plot_confusion
    from resnet_ft.predict import evaluate_dir, load_predictor
    from resnet_ft.reporting import console, metrics_tables, print_json

    predictor = load_exported(model) if model else load_predictor(run)
    report, misclassified, skipped = evaluate_dir(predictor, data_dir, top_k=top_k)
    name = data_dir.resolve().name + (f"-{model.name}" if model else "")
    folder = out or run / "eval" / name
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "true", "predicted", "probability"])
    writer.writerows(misclassified)
    write_text(folder / "misclassified.csv", buffer.getvalue())
    write_text(folder / "metrics.json", json.dumps(report, indent=2, ensure_ascii=False))
    plot_confusion(report["confusion_matrix"], report["labels"], folder / "confusion.png")
    for path, reason in skipped.items():
        sys.stderr.write(f"warning: skipped {path}: {reason}\n")
    if json_output:
        print_json(report)
    else:
        for table in metrics_tables(report):
            console().print(table)
        console().print(f"report written to {folder}")


@app.command(
    epilog="Examples:\n\n  resnet-ft export runs/flowers -o exported/flowers\n\n"
    "  resnet-ft export runs/flowers -o flowers.tflite --format tflite --quantize int8\n\n"
    "  resnet-ft evaluate runs/flowers data/test --model flowers.tflite"
)
def export(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="SavedModel directory or .tflite file to write.")
    ],
    fmt: Annotated[
        str, typer.Option("--format", help="saved_model (takes image bytes) or tflite.")
    ] = "saved_model",
    quantize: Annotated[
        str, typer.Option(help="TFLite: none, float16, dynamic (int8 weights) or int8 (full).")
    ] = "none",
    calibration_images: Annotated[
        int, typer.Option(help="Training images that calibrate --quantize int8 (at most).")
    ] = 100,
    json_output: JsonFlag = False,
) -> None:
    """Export a run for serving: a SavedModel that decodes images itself, or TFLite."""
    from resnet_ft.export import export as run_export
    from resnet_ft.reporting import console, print_json

    report = run_export(run, out, fmt, quantize, calibration_images)
    if json_output:
        print_json(report.to_dict())
        return
    kind = "SavedModel" if report.format == "saved_model" else f"TFLite, {report.quantize}"
    console().print(f"wrote {report.path} ({kind}, {report.size_bytes / 1e6:.1f} MB)")
    what = "signatures" if report.format == "saved_model" else "ops"
    console().print(f"{what}: {', '.join(report.ops)}")
    if report.calibration_images:
        console().print(f"calibrated on {report.calibration_images} training images")
    if report.top1_agreement is None:
        console().print("agreement: no validation image to compare with the float model")
    else:
        console().print(
            f"agreement with the float model on {report.compared_images} validation images: "
            f"top-1 {report.top1_agreement:.1%}, max |p - p_float| {report.max_prob_diff:.2e}"
        )


data_app = typer.Typer(help="Get data: the real flowers files, or an offline stand-in.")
app.add_typer(data_app, name="data")


@data_app.command(
    "flowers", epilog="Example:\n\n  resnet-ft data flowers data/  # then data/flower_photos/"
)
def data_flowers(
    dest: Annotated[Path, typer.Argument(help="Directory to download and extract into.")],
    base_url: Annotated[
        str | None, typer.Option(help="Mirror to download from instead of the official hosts.")
    ] = None,
) -> None:
    """Download TF's flower_photos and the official slim resnet_v1_101 checkpoint (resumable)."""
    from resnet_ft.download import fetch_flowers
    from resnet_ft.reporting import console

    errors = console(stderr=True)
    paths = fetch_flowers(dest, base_url=base_url, console=errors, progress=errors.is_terminal)
    for name, path in paths.items():
        console().print(f"{name}: {path}")


@data_app.command("standin", epilog="Example:\n\n  resnet-ft data standin demo/standin")
def data_standin(
    dest: Annotated[Path, typer.Argument(help="Directory for the stand-in files.")],
    depth: Annotated[int, typer.Option(help="ResNet depth of the checkpoint.")] = 101,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    images_per_class: Annotated[
        int, typer.Option(help="Generated images per class (0: checkpoint only).")
    ] = 30,
) -> None:
    """Write an offline STAND-IN: random-weight slim checkpoint and a generated image folder."""
    from resnet_ft.reporting import console
    from resnet_ft.runtime import import_tensorflow_quietly
    from resnet_ft.standin import write_standin_checkpoint, write_standin_images

    import_tensorflow_quietly()
    prefix = write_standin_checkpoint(dest / f"resnet_v1_{depth}.ckpt", depth, seed=seed)
    console().print(f"wrote STAND-IN checkpoint {prefix} (random weights, not pretrained)")
    if images_per_class:
        images = write_standin_images(dest / "images", per_class=images_per_class, seed=seed)
        console().print(f"wrote STAND-IN images {images} (generated blobs, not flowers)")


def _usage(message: str) -> ResnetFtError:
    from resnet_ft.errors import InputError

    return InputError(message)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map failures to one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("RESNET_FT_DEBUG", "") not in ("", "0") or "--debug" in args
    args = [a for a in args if a != "--debug"]
    if args and args[0] in TENSORFLOW_COMMANDS and "--help" not in args:
        from resnet_ft.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="resnet-ft", standalone_mode=False)
    except typer.Abort:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, ...
        if debug:
            raise
        if not args or args == ["--help"]:
            return 0
        known = getattr(command, "commands", {})
        where = f"resnet-ft {args[0]}" if args and args[0] in known else "resnet-ft"
        _error(f"{exc.format_message()} (see '{where} --help')")
        return EXIT_USAGE
    except ResnetFtError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:  # disk full, read-only, permissions: a user-facing condition
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_FAILURE
    except Exception as exc:  # a bug: still one line, with a way to see more
        if debug:
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_FAILURE
    return result if isinstance(result, int) else 0


def _error(message: str) -> None:
    line = " ".join(message.split())
    sys.stderr.write(f"error: {line}\n")
