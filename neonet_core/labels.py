"""Label conventions shared by the phantom, the manifest checks, NeoSeg and NeoGen's ControlNet.

Anatomy masks are multi-label uint8 volumes with these values (0 = background). Nerves are never
labelled: they are what PNI follows, and a model must find them in the image.
"""

ANATOMY_LABELS: dict[int, str] = {1: "liver", 2: "bile_duct", 3: "vessel", 4: "tumour"}
TUMOUR_LABEL = 4
MAX_ANATOMY_LABEL = max(ANATOMY_LABELS)
CLASS_NAMES = ("PNI-", "PNI+")
