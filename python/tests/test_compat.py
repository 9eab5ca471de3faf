"""The modules that existing platform scripts import, shipped in the wheel beside kai."""

import importlib
import inspect

import pytest

import kai

from conftest import model_dir

MODULES = {
    "multimodal_pattern_recognition": "MultiModalPatternRecognizer",
    "domain_specific_networks": "DomainSpecificNetworkManager",
    "neural_ocr_orchestrator": "NeuralOCROrchestrator",
}


@pytest.mark.parametrize(("module", "name"), MODULES.items())
def test_module_imports_and_constructs(module, name):
    imported = importlib.import_module(module)
    cls = getattr(imported, name)
    assert imported.__doc__
    assert list(inspect.signature(cls).parameters) == []
    cls()


def test_recognizer_available_is_bool():
    from multimodal_pattern_recognition import MultiModalPatternRecognizer

    available = MultiModalPatternRecognizer().available()
    assert isinstance(available, bool)
    folders = [model_dir() / name for name in (kai.DEFAULT_TEXT_MODEL, kai.DEFAULT_IMAGE_MODEL)]
    if all(folder.is_dir() and any(folder.iterdir()) for folder in folders):
        assert available is True


def test_recognizer_unavailable_without_models(tmp_path, monkeypatch):
    from multimodal_pattern_recognition import MultiModalPatternRecognizer

    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    assert MultiModalPatternRecognizer().available() is False


def test_domains_without_store(tmp_path, monkeypatch):
    from domain_specific_networks import DomainSpecificNetworkManager

    store = tmp_path / "store"
    monkeypatch.setenv("KAI_DATA_DIR", str(store))
    assert DomainSpecificNetworkManager().list_available_domains() == []
    assert not store.exists(), "listing domains must not create a store"


def test_domains_list_trained_heads(tmp_path, monkeypatch):
    from domain_specific_networks import DomainSpecificNetworkManager

    store = tmp_path / "store"
    monkeypatch.setenv("KAI_DATA_DIR", str(store))
    # A head's manifest is what the listing reads; training one needs the models.
    head = store / "heads" / "species"
    head.mkdir(parents=True)
    (head / "head.json").write_text(
        '{"spec": {"domain": "species", "label": "property:species", "materialType": "wood"},'
        ' "classes": ["oak", "pine"], "imageModel": "efficientnet-lite0", "dimension": 1280,'
        ' "temperature": 1.0, "heldoutAccuracy": 0.5, "neighbourAccuracy": 0.5,'
        ' "trainingImages": 4, "heldoutImages": 2}'
    )
    domains = DomainSpecificNetworkManager().list_available_domains()
    assert domains == ["species"]
    assert all(isinstance(domain, str) for domain in domains)


def test_ocr_engines_are_an_empty_list():
    from neural_ocr_orchestrator import NeuralOCROrchestrator

    engines = NeuralOCROrchestrator().available_engines()
    assert engines == []
    assert isinstance(engines, list)
