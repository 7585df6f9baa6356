"""The models: one module per model, each registering its class in fashiongen.models.contract on import.
Importing this package imports every module in it, so a new model is one new file."""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
