"""Object detection with PyTorch: a small anchor-free detector, trained from scratch, that finds every object in
an image (CenterNet, "Objects as Points", Zhou et al. 2019): per class, a heatmap of object centres on a grid
of SIZE/STRIDE cells, and at each centre the box's width, height and sub-cell offset.  No downloaded weights,
and no torchvision, which the pytorch env does not have.

Dataset: the `json` format (annotations.json, a COCO subset, plus the images); every box counts.  The metric
is mAP@0.5: per class, the all-point interpolated average precision (PASCAL VOC 2010 on), averaged over the
classes.  It is a few lines here because pycocotools is not in the env.  The api takes param `image`, a
base64-encoded PNG or JPEG, and answers `{"objects": [{"label", "score", "box": [x, y, width, height]}]}` in the
image's pixels, every object scoring at least `min_score` (default 0.3).
"""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import contract
from images import decode_image

WEIGHTS, META = "model.pt", "model.json"
SIZE, STRIDE = 64, 4  # images are resized to SIZE x SIZE; the heatmap has SIZE / STRIDE cells a side
GRID = SIZE // STRIDE
MAX_OBJECTS = 20  # per image
MIN_SCORE = 0.3  # what the api answers by default; the mAP ranks every peak down to EVAL_SCORE
EVAL_SCORE = 0.05


def load_examples(root: Path, settings: dict) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
    """(pixels, boxes as fractions of the image [x, y, w, h], labels) per image; images without boxes stay."""
    doc = json.loads((root / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    objects = {}
    for a in doc["annotations"]:
        objects.setdefault(a["image_id"], []).append(a)
    examples = []
    for image in doc["images"]:
        width, height = image["width"], image["height"]
        found = objects.get(image["id"], [])
        boxes = np.array([[x / width, y / height, w / width, h / height] for x, y, w, h in (a["bbox"] for a in found)],
                         dtype=np.float32).reshape(-1, 4)
        examples.append((pixels(Image.open(root / image["file_name"])), boxes,
                         [names[a["category_id"]] for a in found]))
    if not any(labels for *_, labels in examples):
        raise SystemExit(f"{root}: annotations.json has no annotated image")
    return examples


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32).transpose(2, 0, 1) / 255.0


def _conv(inputs: int, outputs: int, stride: int = 1) -> list[torch.nn.Module]:
    return [torch.nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False), torch.nn.BatchNorm2d(outputs),
            torch.nn.ReLU()]


class Detector(torch.nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.body = torch.nn.Sequential(*_conv(3, 16), *_conv(16, 32, 2), *_conv(32, 32), *_conv(32, 64, 2),
                                        *_conv(64, 64), *_conv(64, 64))
        self.heat = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, 1, 1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(64, classes, 1))
        self.heat[-1].bias.data.fill_(-2.19)  # a prior of 0.1 per cell, as CenterNet starts
        self.box = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, 1, 1), torch.nn.ReLU(), torch.nn.Conv2d(64, 4, 1))

    def forward(self, x):
        features = self.body(x)
        return self.heat(features), self.box(features)  # box: width and height in cells, x and y offsets


def targets(boxes: np.ndarray, labels: list[str], classes: list[str]):
    """The heatmaps (a Gaussian per object, 1 at its centre cell), box targets and the centres' mask."""
    heat = np.zeros((len(classes), GRID, GRID), np.float32)
    box = np.zeros((4, GRID, GRID), np.float32)
    mask = np.zeros((GRID, GRID), np.float32)
    ys, xs = np.mgrid[0:GRID, 0:GRID]
    for (x, y, w, h), label in zip(boxes, labels):
        if label not in classes:
            continue
        cx, cy = (x + w / 2) * GRID, (y + h / 2) * GRID
        ix, iy = min(int(cx), GRID - 1), min(int(cy), GRID - 1)
        sigma = max(0.5, min(w, h) * GRID / 6)
        c = classes.index(label)
        heat[c] = np.maximum(heat[c], np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma ** 2)))
        heat[c, iy, ix] = 1.0
        box[:, iy, ix] = (w * GRID, h * GRID, cx - ix, cy - iy)
        mask[iy, ix] = 1.0
    return heat, box, mask


def _focal(logits, target):
    """CenterNet's penalty-reduced focal loss, per object."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    loss = positive * (1 - p) ** 2 * torch.log(p) + (1 - positive) * (1 - target) ** 4 * p ** 2 * torch.log(1 - p)
    return -loss.sum() / positive.sum().clamp(min=1)


def fit(examples, settings: dict, pretrained: Path | None = None):
    torch.manual_seed(settings["SEED"])
    device = settings["DEVICE"]
    classes = sorted({label for *_, labels in examples for label in labels})
    x = torch.tensor(np.stack([e[0] for e in examples]))
    heat, box, mask = (torch.tensor(np.stack(t)) for t in zip(*(targets(e[1], e[2], classes) for e in examples)))
    net = Detector(len(classes)).to(device)
    if pretrained:
        meta = json.loads((pretrained / META).read_text())
        if meta["classes"] == classes:
            net.load_state_dict(torch.load(pretrained / WEIGHTS))
            contract.log(f"starting from {pretrained}")
        else:
            contract.log(f"not starting from {pretrained}: it detects {meta['classes']}, this dataset has {classes}")
    optimizer = torch.optim.Adam(net.parameters(), lr=settings["LEARNING_RATE"])
    for epoch in range(settings["EPOCHS"]):
        net.train()
        for batch in torch.randperm(len(x)).split(settings["BATCH_SIZE"]):
            optimizer.zero_grad()
            out_heat, out_box = net(x[batch].to(device))
            centres = mask[batch].to(device)[:, None]
            box_loss = ((out_box - box[batch].to(device)).abs() * centres).sum() / centres.sum().clamp(min=1)
            loss = _focal(out_heat, heat[batch].to(device)) + box_loss
            loss.backward()
            optimizer.step()
        contract.metric(epoch=epoch + 1, loss=round(loss.item(), 4))
    return {"net": net.eval(), "classes": classes}


def detect(model, batch: torch.Tensor, min_score: float) -> list[list[tuple[str, float, list[float]]]]:
    """Per image: (label, score, box as fractions [x, y, w, h]) of each heatmap peak scoring *min_score* or more."""
    classes = model["classes"]
    with torch.no_grad():
        heat, box = model["net"](batch)
    heat = torch.sigmoid(heat)
    peaks = heat * (torch.nn.functional.max_pool2d(heat, 3, 1, 1) == heat)  # a cell that beats its neighbours
    found = []
    for image_peaks, image_box in zip(peaks, box):
        scores, where = image_peaks.flatten().topk(min(MAX_OBJECTS, image_peaks.numel()))
        objects = []
        for score, index in zip(scores.tolist(), where.tolist()):
            if score < min_score:
                break
            c, cell = divmod(index, GRID * GRID)
            iy, ix = divmod(cell, GRID)
            w, h, dx, dy = image_box[:, iy, ix].tolist()
            cx, cy, w, h = (ix + dx) / GRID, (iy + dy) / GRID, max(w, 0.0) / GRID, max(h, 0.0) / GRID
            objects.append((classes[c], score, [cx - w / 2, cy - h / 2, w, h]))
        found.append(objects)
    return found


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return float(w * h / union) if union > 0 else 0.0


def average_precision(detections: list[tuple[float, int, list[float]]], truths: dict[int, list]) -> float:
    """All-point interpolated AP at IoU 0.5 of one class: *detections* (score, image, box), *truths* per image."""
    total = sum(len(boxes) for boxes in truths.values())
    matched = {image: [False] * len(boxes) for image, boxes in truths.items()}
    hits = []
    for _, image, found in sorted(detections, key=lambda d: -d[0]):
        ious = [_iou(found, truth) for truth in truths.get(image, [])]
        best = int(np.argmax(ious)) if ious else -1
        hit = best >= 0 and ious[best] >= 0.5 and not matched[image][best]
        if hit:
            matched[image][best] = True
        hits.append(hit)
    true_positives = np.cumsum(hits, dtype=np.float64)
    recall = np.concatenate([[0.0], true_positives / max(total, 1), [1.0]])
    precision = np.concatenate([[0.0], true_positives / np.arange(1, len(hits) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the best precision at this recall or more
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def evaluate(model, examples) -> dict:
    found = detect(model, torch.tensor(np.stack([e[0] for e in examples])), EVAL_SCORE)
    per_class = {}
    for label in model["classes"]:
        truths = {i: [b for b, l in zip(e[1].tolist(), e[2]) if l == label] for i, e in enumerate(examples)}
        if sum(map(len, truths.values())):
            detections = [(score, i, box) for i, objects in enumerate(found) for name, score, box in objects
                          if name == label]
            per_class[label] = round(average_precision(detections, truths), 4)
    return {"map_50": round(sum(per_class.values()) / max(len(per_class), 1), 4),
            **{f"ap_50_{label}": ap for label, ap in per_class.items()},
            "objects": sum(len(e[2]) for e in examples)}


def save(model, folder: Path) -> None:
    torch.save(model["net"].state_dict(), folder / WEIGHTS)
    (folder / META).write_text(json.dumps({"classes": model["classes"]}))


def load(folder: Path):
    meta = json.loads((folder / META).read_text())
    net = Detector(len(meta["classes"]))
    net.load_state_dict(torch.load(folder / WEIGHTS))
    return {"net": net.eval(), "classes": meta["classes"]}


def predict(model, params: dict) -> dict:
    image = decode_image(params)
    min_score = params.get("min_score", MIN_SCORE)
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0 <= min_score <= 1:
        raise ValueError("param 'min_score' (Float, optional) must be a number from 0 to 1")
    width, height = image.size
    [objects] = detect(model, torch.tensor(pixels(image))[None], float(min_score))
    return {"objects": [{"label": label, "score": round(score, 4),
                         "box": [round(x * width, 1), round(y * height, 1), round(w * width, 1), round(h * height, 1)]}
                        for label, score, (x, y, w, h) in objects]}
