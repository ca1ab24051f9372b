"""Image classification with PyTorch: a small convolutional network (two conv layers, as LeNet).

Dataset: the `dir` format, one folder per class of .png/.jpg images, resized to IMG_SIZE.
The api takes param `image`: a base64-encoded PNG or JPEG.
"""

import json
from pathlib import Path

import numpy as np
import torch

import contract
from images import decode_image, load_examples, to_array  # noqa: F401 (load_examples is the model API)

WEIGHTS, META = "model.pt", "model.json"


def network(img_size: int, classes: int) -> torch.nn.Module:
    """Images arrive flattened (IMG_SIZE x IMG_SIZE grey levels); any size ends in 32 x 2 x 2 features."""
    nn = torch.nn
    return nn.Sequential(nn.Unflatten(1, (1, img_size, img_size)),
                         nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(128, classes))


def fit(examples, settings: dict, pretrained: Path | None = None):
    torch.manual_seed(settings["SEED"])
    classes = sorted({label for _, label in examples})
    x = torch.tensor(np.stack([a for a, _ in examples]))
    y = torch.tensor([classes.index(label) for _, label in examples])
    net = network(settings["IMG_SIZE"], len(classes)).to(settings["DEVICE"])
    if pretrained:
        net.load_state_dict(torch.load(pretrained / WEIGHTS))
        contract.log(f"starting from {pretrained}")
    optimizer = torch.optim.Adam(net.parameters(), lr=settings["LEARNING_RATE"])
    for epoch in range(settings["EPOCHS"]):
        for batch in torch.randperm(len(x)).split(settings["BATCH_SIZE"]):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
        contract.log(f"epoch {epoch + 1}/{settings['EPOCHS']} loss {loss.item():.4f}")
        contract.metric(epoch=epoch + 1, loss=round(loss.item(), 4))
    return {"net": net.eval(), "classes": classes, "img_size": settings["IMG_SIZE"]}


def evaluate(model, examples) -> dict:
    x = torch.tensor(np.stack([a for a, _ in examples]))
    with torch.no_grad():
        predicted = model["net"](x).argmax(1).tolist()
    correct = sum(model["classes"][p] == label for p, (_, label) in zip(predicted, examples))
    return {"accuracy": round(correct / len(examples), 4)}


def save(model, folder: Path) -> None:
    torch.save(model["net"].state_dict(), folder / WEIGHTS)
    (folder / META).write_text(json.dumps({"classes": model["classes"], "img_size": model["img_size"]}))


def load(folder: Path):
    meta = json.loads((folder / META).read_text())
    net = network(meta["img_size"], len(meta["classes"]))
    net.load_state_dict(torch.load(folder / WEIGHTS))
    return {"net": net.eval(), **meta}


def predict(model, params: dict) -> dict:
    return predict_batch(model, [params])[0]


def predict_batch(model, batch: list[dict]) -> list[dict]:
    """Several calls in one forward pass (the server's dynamic batching, $MAX_BATCH_SIZE)."""
    x = torch.tensor(np.stack([to_array(decode_image(params), model["img_size"]) for params in batch]))
    with torch.no_grad():
        probabilities = torch.softmax(model["net"](x), 1)
    answers = []
    for row in probabilities:
        best = int(row.argmax())
        answers.append({"label": model["classes"][best], "probability": round(float(row[best]), 4)})
    return answers
