"""Phantom cohorts: synthetic hepatobiliary-phase T1 MRIs of perihilar cholangiocarcinoma with a
learnable perineural-invasion (PNI) label, for demos and tests.

``generate_case(index, seed, label, params) -> PhantomCase`` makes one case in memory;
``generate_cohort(out_dir, cases, positives, seed, ...) -> Path`` writes a cohort and its manifest.
Modules: grid (drawing primitives), anatomy, lesions (tumour, PNI, confounders), scanner, case,
cohort, readme, params (difficulty).
"""

from neonet_core.phantom.case import PhantomCase, generate_case
from neonet_core.phantom.cohort import case_id, cohort_labels, generate_cohort
from neonet_core.phantom.params import PhantomParams

__all__ = ["PhantomCase", "PhantomParams", "case_id", "cohort_labels", "generate_case", "generate_cohort"]
