import numpy as np
import torch

from fashiongen.models.classifier import load_classifier, save_classifier, train_classifier


def _two_class_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: bright top half; class 1: bright bottom half, with pixel noise."""
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 60, (n, 12, 12, 1)).astype(np.uint8)
    for k, y in enumerate(labels):
        images[k, (0 if y == 0 else 6):(6 if y == 0 else 12)] += 150
    return images, labels


def test_learns_a_visual_signal_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = _two_class_images(512, rng)
    model = train_classifier(images, labels, epochs=3, batch_size=64, seed=0)
    test_images, test_labels = _two_class_images(200, rng)
    with torch.no_grad():
        from fashiongen.data.images import to_tensor_range
        pred = model(torch.from_numpy(to_tensor_range(test_images))).argmax(1).numpy()
    assert (pred == test_labels).mean() > 0.9
    uri = str(tmp_path / "clf.pt")
    save_classifier(model, uri)
    again = load_classifier(uri)
    assert torch.equal(model.predict_features(test_images), again.predict_features(test_images))
    assert again.predict_features(test_images).shape == (200, 128)


def test_a_narrow_classifier_learns_too_round_trips_its_width_and_old_checkpoints_load(tmp_path):
    rng = np.random.default_rng(1)
    images, labels = _two_class_images(512, rng)
    narrow = train_classifier(images, labels, epochs=3, batch_size=64, seed=0, width=8)
    test_images, test_labels = _two_class_images(200, rng)
    with torch.no_grad():
        from fashiongen.data.images import to_tensor_range
        pred = narrow(torch.from_numpy(to_tensor_range(test_images))).argmax(1).numpy()
    assert (pred == test_labels).mean() > 0.9
    wide = train_classifier(images[:8], labels[:8], epochs=1, seed=0)
    assert sum(p.numel() for p in narrow.parameters()) < 0.1 * sum(p.numel() for p in wide.parameters())
    uri = str(tmp_path / "narrow.pt")
    save_classifier(narrow, uri)
    again = load_classifier(uri)
    assert again.config["width"] == 8
    assert torch.equal(narrow.predict_features(test_images), again.predict_features(test_images))

    payload = torch.load(uri, weights_only=True)  # a checkpoint from before width was a setting: the 32-wide network
    payload["config"].pop("width")
    payload["state"] = wide.state_dict()
    torch.save(payload, uri)
    assert load_classifier(uri).config["width"] == 32
