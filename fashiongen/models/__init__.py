from fashiongen.models import gan  # noqa: F401  (registers the "lsgan" generator)
from fashiongen.models import baselines, dvbpr  # noqa: F401  (registers "dvbpr", "poprank", "bprmf", "vbpr")
