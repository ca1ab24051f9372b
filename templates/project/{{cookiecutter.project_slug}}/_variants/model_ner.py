"""Named-entity recognition with scikit-learn: a linear classifier over word features tags each word
(BIO tags), trained with SGD so that each epoch reports its loss.

Dataset: the `brat_ann` format (brat standoff: name.txt and name.ann with T lines).  The api takes param
`text` and answers `{"entities": [{"type", "start", "end", "text"}]}` with character offsets.
"""

import pickle
import re
from pathlib import Path

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss

import contract

MODEL_FILE = "model.pkl"
TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def load_examples(root: Path, settings: dict) -> list[tuple[list, list]]:
    """One example per document: its tokens and their BIO tags from the .ann file's entities."""
    examples = []
    for txt in sorted(root.glob("*.txt")):
        text = txt.read_text(encoding="utf-8")
        spans = []
        for line in txt.with_suffix(".ann").read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            if line.startswith("T") and len(fields) >= 3 and ";" not in fields[1]:
                label, start, end = fields[1].split()
                spans.append((int(start), int(end), label))
        words = tokens(text)
        tags = []
        for _, start, end in words:
            inside = [s for s in spans if s[0] <= start and end <= s[1]]
            tags.append("O" if not inside else ("B-" if start == inside[0][0] else "I-") + inside[0][2])
        examples.append((words, tags))
    if not examples:
        raise SystemExit(f"{root}: no .txt/.ann pairs")
    return examples


def features(words: list, i: int) -> dict:
    word = words[i][0]
    return {"lower": word.lower(), "title": word.istitle(), "upper": word.isupper(), "digit": word.isdigit(),
            "suffix": word[-3:].lower(), "prev": words[i - 1][0].lower() if i else "<s>",
            "next": words[i + 1][0].lower() if i + 1 < len(words) else "</s>"}


def _flat(examples):
    x = [features(words, i) for words, _ in examples for i in range(len(words))]
    y = [tag for _, tags in examples for tag in tags]
    return x, y


def fit(examples, settings: dict, pretrained: Path | None = None):
    if pretrained:
        contract.log("this tagger trains from scratch; PRETRAINED_MODEL is ignored")
    x, y = _flat(examples)
    vectorizer = DictVectorizer(sparse=False).fit(x)  # a few hundred features: dense is small, and SGD takes it
    matrix = vectorizer.transform(x)
    classes = sorted(set(y))
    tagger = SGDClassifier(loss="log_loss", alpha=settings["LEARNING_RATE"] / 100, random_state=settings["SEED"])
    for epoch in range(settings["EPOCHS"]):
        tagger.partial_fit(matrix, y, classes=classes)
        contract.metric(epoch=epoch + 1, loss=round(log_loss(y, tagger.predict_proba(matrix), labels=classes), 4),
                        accuracy=round(float(tagger.score(matrix, y)), 4))
    return {"vectorizer": vectorizer, "tagger": tagger}


def evaluate(model, examples) -> dict:
    x, y = _flat(examples)
    return {"accuracy": round(float(model["tagger"].score(model["vectorizer"].transform(x), y)), 4)}


def save(model, folder: Path) -> None:
    with open(folder / MODEL_FILE, "wb") as f:
        pickle.dump(model, f)


def load(folder: Path):
    with open(folder / MODEL_FILE, "rb") as f:
        return pickle.load(f)


def predict(model, params: dict) -> dict:
    text = params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("param 'text' (String, required) must be non-empty text")
    words = tokens(text)
    tags = model["tagger"].predict(model["vectorizer"].transform([features(words, i) for i in range(len(words))]))
    entities = []
    for (word, start, end), tag in zip(words, tags):
        if tag.startswith("B-") or (tag.startswith("I-") and not (entities and entities[-1]["type"] == tag[2:])):
            entities.append({"type": tag[2:], "start": start, "end": end})
        elif tag.startswith("I-"):
            entities[-1]["end"] = end
    for entity in entities:
        entity["text"] = text[entity["start"]:entity["end"]]
    return {"entities": entities}
