"""Text classification with naive Bayes (scikit-learn).

Character n-grams need no tokenizer, so Chinese text works as it is.
Dataset: the `dir` format, one folder per class; each line of a .txt file is one example.
"""

import pickle
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

import contract

MODEL_FILE = "model.pkl"


def load_examples(root: Path, settings: dict) -> list[tuple[str, str]]:
    return [(line.strip(), label) for path, label in contract.read_dir_dataset(root, (".txt",))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fit(examples, settings: dict, pretrained: Path | None = None):
    """Naive Bayes has no transfer training: PRETRAINED_MODEL is ignored with a note."""
    if pretrained:
        contract.log("naive Bayes trains from scratch; PRETRAINED_MODEL is ignored")
    texts, labels = zip(*examples)
    return make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 2)),
                         MultinomialNB(alpha=settings["LEARNING_RATE"] or 1.0)).fit(texts, labels)


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
