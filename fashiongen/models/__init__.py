from fashiongen.models import gan  # noqa: F401  (registers the "lsgan" generator)
