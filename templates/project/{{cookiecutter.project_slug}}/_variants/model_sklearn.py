"""Text classification with naive Bayes (scikit-learn).

Character n-grams need no tokenizer, so Chinese text works as it is.
Dataset: the `dir` format, one folder per class; each line of a .txt file is one example.
"""

import pickle
import random
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import log_loss
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

import contract

MODEL_FILE = "model.pkl"


def load_examples(root: Path, settings: dict) -> list[tuple[str, str]]:
    return [(line.strip(), label) for path, label in contract.read_dir_dataset(root, (".txt",))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fit(examples, settings: dict, pretrained: Path | None = None):
    """Naive Bayes over EPOCHS growing shares of the training data (each example is learnt once), with the
    loss and accuracy over all of it after each share: a learning curve.  No transfer training:
    PRETRAINED_MODEL is ignored with a note."""
    if pretrained:
        contract.log("naive Bayes trains from scratch; PRETRAINED_MODEL is ignored")
    texts, labels = zip(*examples)
    classes = sorted(set(labels))
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 2)).fit(texts)
    x = vectorizer.transform(texts)
    bayes = MultinomialNB(alpha=settings["LEARNING_RATE"] or 1.0)
    order = list(range(len(texts)))
    random.Random(settings["SEED"]).shuffle(order)
    epochs = max(1, min(settings["EPOCHS"], len(order)))
    for epoch in range(epochs):
        chunk = order[epoch::epochs]
        bayes.partial_fit(x[chunk], [labels[i] for i in chunk], classes=classes)
        contract.metric(epoch=epoch + 1, loss=round(log_loss(labels, bayes.predict_proba(x), labels=classes), 4),
                        accuracy=round(float(bayes.score(x, labels)), 4))
    return make_pipeline(vectorizer, bayes)


def evaluate(model, examples) -> dict:
    texts, labels = zip(*examples)
    return {"accuracy": round(float(model.score(texts, labels)), 4)}


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
    probabilities = model.predict_proba([text])[0]
    best = probabilities.argmax()
    return {"label": str(model.classes_[best]), "probability": round(float(probabilities[best]), 4)}
