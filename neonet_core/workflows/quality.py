"""Is NeoGen helping for the right reason? Detectability and class fidelity of a run's synthetic patches.

* **Detectability**: the cross-validated AUC of a simple real-vs-synthetic classifier, real and
  synthetic patches of the same class (target <= 0.70; 0.5 = indistinguishable). A high value means
  "looks synthetic" is a shortcut the classifier can learn instead of PNI. Also measured against
  the real patches' autoencoder round trips (``detectability_vs_round_trip``): what is left beyond
  the decoded look, which the classifier's round-trip control (:mod:`neonet_core.neocls.stage`) neutralises.
* **Class fidelity**: a classifier trained on real patches only ranks synthetic PNI+ above synthetic
  PNI- (target >= 0.70). Balancing makes only minority-class patches, so a few majority-class
  patches are generated for this check alone (never trained on).

Both use :mod:`neonet_core.neogen.fidelity`; a gallery of real vs synthetic patches with their
tumour outlines is written beside the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neonet_core.fileio import write_text_atomic
from neonet_core.patches import PatchSet

QUALITY_FILE = "neogen_quality.json"


def neogen_quality(bundle_dir, train: PatchSet, synthetic: PatchSet, seed: int, device, out_dir, n_check: int = 16) -> dict:
    """Detectability and class fidelity of ``synthetic`` against the real patches of ``train``;
    writes ``out_dir/neogen_quality.json`` and ``out_dir/gallery.png`` (reused when present)."""
    from neonet_core.manifest import Case
    from neonet_core.neogen.autoencoder import round_trip
    from neonet_core.neogen.fidelity import class_fidelity, detectability
    from neonet_core.neogen.gallery import write_gallery
    from neonet_core.neogen.generate import plan_synthetic, synthesise
    from neonet_core.neogen.loaders import load_neogen

    path = Path(out_dir) / QUALITY_FILE
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    real = train.take(np.flatnonzero(~train.synthetic))
    if len(synthetic) == 0:
        return {}
    minority = int(synthetic.labels[0])
    majority = 1 - minority
    sources = [Case(c, None, None, None, majority, p) for c, p, y in zip(real.case_ids, real.patient_ids, real.labels) if y == majority]
    plans = plan_synthetic(sources, min(n_check, len(sources)), seed + 1)
    models = load_neogen(bundle_dir, device)
    check = synthesise(models, real, plans, majority, seed + 1, prefix="check")
    same_class = real.take(np.flatnonzero(real.labels == minority))
    det = detectability(same_class.images, synthetic.images, seed, real_masks=same_class.tumour, synthetic_masks=synthetic.tumour)
    det_decoded = detectability(round_trip(models.ae, same_class.images), synthetic.images, seed,
                                real_masks=same_class.tumour, synthetic_masks=synthetic.tumour)
    both = synthetic + check
    fid = class_fidelity(real.images, real.labels, both.images, both.labels, seed, real_masks=real.tumour, synthetic_masks=both.tumour)
    write_gallery(Path(out_dir) / "gallery.png", real.images, real.tumour, both.images, both.tumour, real.labels, both.labels, n=8)
    out = {"detectability": det, "detectability_vs_round_trip": det_decoded, "class_fidelity": fid, "fidelity_check_patches": len(check)}
    write_text_atomic(path, json.dumps(out, indent=2, default=_json_default) + "\n")
    return json.loads(path.read_text(encoding="utf-8"))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["neogen_quality", "QUALITY_FILE"]
