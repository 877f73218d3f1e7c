"""Phantom cohorts: synthetic hepatobiliary-phase T1 MRIs of perihilar cholangiocarcinoma with a
learnable perineural-invasion (PNI) label, for demos and tests; and the same lesions painted into
real background scans (MR or CT, the user's own), to sanity-check the pipeline on real anatomy.

``generate_case(index, seed, label, params) -> PhantomCase`` makes one case in memory;
``generate_cohort(out_dir, cases, positives, seed, ...) -> Path`` writes a cohort and its manifest.
``generate_background_case(index, seed, label, load_background(BackgroundSpec(scan)), ...)`` and
``generate_background_cohort(out_dir, [scan, ...], cases, positives, seed, ...)`` do the same on
real backgrounds. Modules: grid (drawing primitives), anatomy, lesions (tumour, PNI, decoys,
confounders), scanner, case, cohort (and the all-or-nothing publishing), readme, params (difficulty),
background (reading and checking a scan, body, sites), background_case, background_cohort.
"""

from neonet_core.phantom.background import BackgroundSpec, load_background
from neonet_core.phantom.background_case import BackgroundCase, generate_background_case
from neonet_core.phantom.background_cohort import generate_background_cohort
from neonet_core.phantom.case import PhantomCase, generate_case
from neonet_core.phantom.cohort import case_id, cohort_labels, generate_cohort
from neonet_core.phantom.params import PhantomParams

__all__ = [
    "BackgroundCase", "BackgroundSpec", "PhantomCase", "PhantomParams", "case_id", "cohort_labels",
    "generate_background_case", "generate_background_cohort", "generate_case", "generate_cohort", "load_background",
]
