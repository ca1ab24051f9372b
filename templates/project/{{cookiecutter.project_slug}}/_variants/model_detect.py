"""Object detection with PyTorch: a small convolutional network, trained from scratch, that finds the one
object in an image: its class and its box.  No downloaded weights.

Dataset: the `json` format (annotations.json, a COCO subset, plus the images); the first box of each image
is its target.  The api takes param `image`, a base64-encoded PNG or JPEG, and answers
`{"objects": [{"label", "score", "box": [x, y, width, height]}]}` in the image's pixels.
"""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import contract
from images import decode_image

WEIGHTS, META = "model.pt", "model.json"
SIZE = 32  # images are resized to SIZE x SIZE; boxes are learnt as fractions of the image


def load_examples(root: Path, settings: dict) -> list[tuple[np.ndarray, np.ndarray, str]]:
    doc = json.loads((root / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    first = {}
    for a in doc["annotations"]:
        first.setdefault(a["image_id"], a)
    examples = []
    for image in doc["images"]:
        a = first.get(image["id"])
        if a is None:
            continue
        x, y, w, h = a["bbox"]
        box = np.array([x / image["width"], y / image["height"], w / image["width"], h / image["height"]],
                       dtype=np.float32)
        examples.append((pixels(Image.open(root / image["file_name"])), box, names[a["category_id"]]))
    if not examples:
        raise SystemExit(f"{root}: annotations.json has no annotated image")
    return examples


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32).transpose(2, 0, 1) / 255.0


def network(classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * (SIZE // 4) ** 2, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, classes + 4))


def fit(examples, settings: dict, pretrained: Path | None = None):
    torch.manual_seed(settings["SEED"])
    classes = sorted({label for *_, label in examples})
    x = torch.tensor(np.stack([e[0] for e in examples]))
    boxes = torch.tensor(np.stack([e[1] for e in examples]))
    y = torch.tensor([classes.index(e[2]) for e in examples])
    net = network(len(classes)).to(settings["DEVICE"])
    if pretrained:
        net.load_state_dict(torch.load(pretrained / WEIGHTS))
        contract.log(f"starting from {pretrained}")
    optimizer = torch.optim.Adam(net.parameters(), lr=settings["LEARNING_RATE"])
    for epoch in range(settings["EPOCHS"]):
        for batch in torch.randperm(len(x)).split(settings["BATCH_SIZE"]):
            optimizer.zero_grad()
            out = net(x[batch])
            loss = torch.nn.functional.cross_entropy(out[:, :len(classes)], y[batch]) + \
                5 * torch.nn.functional.l1_loss(torch.sigmoid(out[:, len(classes):]), boxes[batch])
            loss.backward()
            optimizer.step()
        contract.metric(epoch=epoch + 1, loss=round(loss.item(), 4))
    return {"net": net.eval(), "classes": classes}


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return float(w * h / union) if union > 0 else 0.0


def evaluate(model, examples) -> dict:
    classes = model["classes"]
    with torch.no_grad():
        out = model["net"](torch.tensor(np.stack([e[0] for e in examples])))
    labels = out[:, :len(classes)].argmax(1).tolist()
    boxes = torch.sigmoid(out[:, len(classes):]).tolist()
    correct = sum(classes[p] == e[2] for p, e in zip(labels, examples))
    iou = sum(_iou(b, e[1]) for b, e in zip(boxes, examples)) / len(examples)
    return {"accuracy": round(correct / len(examples), 4), "mean_iou": round(iou, 4)}


def save(model, folder: Path) -> None:
    torch.save(model["net"].state_dict(), folder / WEIGHTS)
    (folder / META).write_text(json.dumps({"classes": model["classes"]}))


def load(folder: Path):
    meta = json.loads((folder / META).read_text())
    net = network(len(meta["classes"]))
    net.load_state_dict(torch.load(folder / WEIGHTS))
    return {"net": net.eval(), "classes": meta["classes"]}


def predict(model, params: dict) -> dict:
    image = decode_image(params)
    width, height = image.size
    classes = model["classes"]
    with torch.no_grad():
        out = model["net"](torch.tensor(pixels(image))[None])[0]
    scores = torch.softmax(out[:len(classes)], 0)
    best = int(scores.argmax())
    x, y, w, h = torch.sigmoid(out[len(classes):]).tolist()
    return {"objects": [{"label": classes[best], "score": round(float(scores[best]), 4),
                         "box": [round(x * width, 1), round(y * height, 1), round(w * width, 1), round(h * height, 1)]}]}
