"""Train on /project/dataset, evaluate on its independent test set when it has one (else on a TRAIN_RATIO
split), and save the model and metrics.json to /project/model.

    python src/train.py            # EPOCHS=10 python src/train.py, and so on
"""

import time

import contract
import model


def main() -> None:
    settings = {name: contract.setting(name) for name in contract.DEFAULTS}
    contract.log(f"settings: {settings}")
    examples = model.load_examples(contract.dataset_dir(), settings)
    test_dir = contract.test_dataset_dir()
    if test_dir is None:
        train, test = contract.split(examples, settings["TRAIN_RATIO"], seed=settings["SEED"])
    else:  # the dataset's independent test set: all of /project/dataset trains
        train, test = examples, model.load_examples(test_dir, settings)
        contract.log(f"evaluating on the independent test set in {test_dir}")
    contract.log(f"{len(train)} training and {len(test)} test examples")
    started = time.monotonic()
    trained = model.fit(train, settings, pretrained=contract.pretrained_model())
    metrics = {**model.evaluate(trained, test), "train_examples": len(train), "test_examples": len(test),
               "seconds": round(time.monotonic() - started, 2), **settings}
    out = contract.model_dir()
    model.save(trained, out)
    contract.write_metrics(metrics)
    contract.log(f"saved the model to {out}: {metrics}")


if __name__ == "__main__":
    main()
