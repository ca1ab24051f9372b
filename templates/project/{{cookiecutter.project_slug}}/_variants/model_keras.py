"""Image classification with Keras 3 (TensorFlow backend): a small dense network.

Dataset: the `dir` format, one folder per class of .png/.jpg images, resized to IMG_SIZE.
The api takes param `image`: a base64-encoded PNG or JPEG.
"""

import json
from pathlib import Path

import keras
import numpy as np

import contract
from images import decode_image, load_examples, to_array  # noqa: F401 (load_examples is the model API)

WEIGHTS, META = "model.keras", "model.json"


def fit(examples, settings: dict, pretrained: Path | None = None):
    keras.utils.set_random_seed(settings["SEED"])
    classes = sorted({label for _, label in examples})
    x = np.stack([a for a, _ in examples])
    y = np.array([classes.index(label) for _, label in examples])
    if pretrained:
        net = keras.saving.load_model(pretrained / WEIGHTS)
        contract.log(f"starting from {pretrained}")
    else:
        net = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(64, activation="relu"),
                                keras.layers.Dense(len(classes), activation="softmax")])
    net.compile(optimizer=keras.optimizers.Adam(settings["LEARNING_RATE"]),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    report = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: contract.metric(
        epoch=epoch + 1, loss=round(float(logs["loss"]), 4), accuracy=round(float(logs["accuracy"]), 4)))
    net.fit(x, y, epochs=settings["EPOCHS"], batch_size=settings["BATCH_SIZE"], verbose=2, callbacks=[report])
    return {"net": net, "classes": classes, "img_size": settings["IMG_SIZE"]}


def evaluate(model, examples) -> dict:
    x = np.stack([a for a, _ in examples])
    predicted = model["net"].predict(x, verbose=0).argmax(1)
    correct = sum(model["classes"][p] == label for p, (_, label) in zip(predicted, examples))
    return {"accuracy": round(correct / len(examples), 4)}


def save(model, folder: Path) -> None:
    model["net"].save(folder / WEIGHTS)
    (folder / META).write_text(json.dumps({"classes": model["classes"], "img_size": model["img_size"]}))


def load(folder: Path):
    meta = json.loads((folder / META).read_text())
    return {"net": keras.saving.load_model(folder / WEIGHTS), **meta}


def predict(model, params: dict) -> dict:
    return predict_batch(model, [params])[0]


def predict_batch(model, batch: list[dict]) -> list[dict]:
    """Several calls in one forward pass (the server's dynamic batching, $MAX_BATCH_SIZE)."""
    x = np.stack([to_array(decode_image(params), model["img_size"]) for params in batch])
    answers = []
    for row in model["net"].predict(x, verbose=0):
        best = int(row.argmax())
        answers.append({"label": model["classes"][best], "probability": round(float(row[best]), 4)})
    return answers
