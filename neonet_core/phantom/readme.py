"""The README.md written next to a phantom cohort: what is in it and the PNI rule."""

from __future__ import annotations

from neonet_core.phantom.params import PhantomParams


def readme_text(settings: dict, params: PhantomParams) -> str:
    """Markdown describing the cohort made with ``settings`` (see :func:`generate_cohort`)."""
    s, p, pni = settings, params.scanner, params.pni
    return f"""# NeoNet phantom cohort

Synthetic data, not patients. Made by `neonet phantom` (generator version {s['version']}):
{s['cases']} cases, {s['positives']} PNI-positive, seed {s['seed']}, difficulty {s['difficulty']}
(0 = easy, 1 = hard), {s['size'][0]}x{s['size'][1]}x{s['size'][2]} voxels of
{s['spacing'][0]}x{s['spacing'][1]}x{s['spacing'][2]} mm, identity direction, LPS.
Rerunning with the same parameters reproduces every file bit for bit; each case depends only on
(seed, case index, label), so any case can be regenerated alone.

## Files

- `manifest.csv`: `case_id,image,tumor_mask,anatomy_mask,label,patient_id` (paths relative to it;
  label 1 = PNI+, 0 = PNI-; patient_id = case_id).
- `cases/<case>_image.nii.gz`: int16 hepatobiliary-phase-like T1 (liver bright from hepatocyte
  uptake; bile ducts, vessels and the tumour hypointense; subcutaneous fat bright; air ~0).
- `cases/<case>_tumour.nii.gz`: uint8 0/1 mask of the main tumour mass.
- `cases/<case>_anatomy.nii.gz`: uint8 labels 1 liver, 2 bile duct, 3 vessel (portal and hepatic
  veins, IVC), 4 tumour. Nerves are NOT labelled.
- `phantom.json`: the parameters above.

## Anatomy

A body outline with subcutaneous fat and a muscle wall; spine, aorta, spleen, kidney and bowel
loops; a liver made of three smoothly deformed ellipsoids; a branching, dilated bile-duct tree
from the hilum (common hepatic duct down, right and left ducts into the liver) with the portal
vein running beside it; hepatic veins and the IVC. The whole anatomy is rotated by up to
6 degrees about a random axis (the image direction stays identity). Thin nerve fibres
(0.5-0.75 mm radius, slightly darker than liver) run just outside the hilar ducts and the portal
vein and drift away from them into the liver beyond the hilum.
The anatomy is designed for a 192x192x120 mm field of view and scaled to other ones.

The tumour (perihilar cholangiocarcinoma) is an elongated, lobulated, hypointense mass around a
hilar duct segment, with an eccentric lobe, kept inside the liver.

## The PNI rule

A case is PNI-positive when tumour tissue spreads along nerve fibres: up to {pni.count[0]}-{pni.count[1]}
sleeves of near-tumour intensity (contrast {pni.contrast[0]:.2f}-{pni.contrast[1]:.2f} of the
tumour-liver difference) follow a fibre outward from where it leaves the tumour, for
{pni.length_mm[0]:.1f}-{pni.length_mm[1]:.1f} mm, with a root radius of
{pni.radius_mm[0]:.2f}-{pni.radius_mm[1]:.2f} mm tapering to half of it (they lie behind duct and
vessel lumens). Extensions that run out of the field of view are cut there.
These extensions are NOT in the tumour mask or the anatomy mask (a radiologist outlines the main
mass), so the masks do not give the label away: it has to be read from the image.

PNI-negative cases have no extension. Every case, whatever its label, carries the same
distribution of confounders: lobulated margins, an eccentric lobe, and 1-3 small dark vessels or
bright strands that touch the tumour and leave it. A case's anatomy, tumour and confounders do not
depend on its label; only the extensions do.

## Scanner

Partial-volume blur along z (Gaussian sigma {p.slice_blur:.2f} voxels, +-20 %) and in plane
({p.inplane_blur:.2f}), a smooth multiplicative bias field (log std {p.bias:.2f}), Rician noise
(sigma {p.noise:.3f} of the liver signal, +-20 %), and a global gain of 1000 +-{100 * p.gain_spread:.0f} %
with an offset of up to +-{p.offset:.0f}, rounded to int16.
"""


def background_readme_text(settings: dict, params: PhantomParams, counts) -> str:
    """Markdown describing a cohort on real backgrounds (see :func:`generate_background_cohort`);
    ``counts[b]`` is how many cases use background ``b``."""
    s, pni = settings, params.pni
    rows = "\n".join(
        f"| {b['path']} | {b['site_mask'] or '(none: the body)'} | "
        f"{', '.join(map(str, b['site_labels'])) if b['site_labels'] else ('all' if b['site_mask'] else '-')} | {n} |"
        for b, n in zip(s["backgrounds"], counts)
    )
    return f"""# NeoNet phantom cohort on real backgrounds

Synthetic lesions in real scans, not patients with PNI. Made by `neonet phantom --background`
(generator version {s['version']}): {s['cases']} cases, {s['positives']} PNI-positive, seed {s['seed']},
difficulty {s['difficulty']} (0 = easy, 1 = hard), crop up to {100 * s['crop']:.0f} % of each axis per side.
Rerunning with the same parameters and the same background files (their SHA-256 is in
`phantom.json`) reproduces every file bit for bit.

| background | site mask | site labels | cases |
| --- | --- | --- | --- |
{rows}

Every background carries about the same share of PNI+ and PNI- cases, so the background does not
tell the label. Cases on one background share its anatomy (patient_id = case_id all the same: each
case is its own lesion).

## Files

- `manifest.csv`: `case_id,image,tumor_mask,anatomy_mask,label,patient_id` (paths relative to it;
  label 1 = PNI+, 0 = PNI-; patient_id = case_id).
- `cases/<case>_image.nii.gz`: the background, randomly cropped, with the lesion painted in; the
  background's own voxel type, spacing and direction; the origin moves with the crop.
- `cases/<case>_tumour.nii.gz`: uint8 0/1 mask of the main tumour mass, on the image's grid.
- `cases/<case>_anatomy.nii.gz` (only for backgrounds with a site mask): uint8 labels 1 = the host
  organ (the site mask's labels; the liver when the site label is the liver's), 4 = tumour.
- `background_cases.csv`: per case, the background, the crop (first voxel i, j, k of the scan kept,
  and the size), the image origin (LPS mm), the tumour site (LPS mm), tumour and sleeve volumes (mL).
- `phantom.json`: the parameters above.

## What is inserted

Each case picks a site: inside the site mask's labels when given, otherwise inside the body
(everything clearly above the air level), away from the body outline and the image edges, where
the scan looks like parenchyma (intensity between the body's 35th and 85th percentiles,
locally homogeneous). Around it, with a random
size (x0.75-1.25) and a random 3D rotation: an elongated, lobulated hypointense mass with an
eccentric lobe (the synthetic phantom's tumour, kept inside the site mask or body), 1-3 small dark
vessels or bright strands touching it (every case), and thin nerve fibres (radius 0.5-0.75 mm)
running outward from it. Nothing is painted outside the body.

Intensities follow the scan around the site: with m the median of the host within 12 mm of the
site, A = max(min(body interquartile range, m - air level), 4 x local noise), a tissue of relative
value r (host = 1) gets m + (r - 1) A: the tumour 0.55-0.70, nerves 0.75-0.88. Painting moves the
scan's smoothed intensity towards these values with partial-volume edges, so the scan's own noise
stays; every voxel outside the painted structures keeps the background's exact value.

## The PNI rule

A case is PNI-positive when tumour tissue spreads along nerve fibres: {pni.count[0]}-{pni.count[1]} sleeves of
near-tumour intensity (contrast {pni.contrast[0]:.2f}-{pni.contrast[1]:.2f} of the tumour-host difference)
follow a fibre outward from where it leaves the tumour, for {pni.length_mm[0]:.1f}-{pni.length_mm[1]:.1f} mm,
root radius {pni.radius_mm[0]:.2f}-{pni.radius_mm[1]:.2f} mm tapering to half; they touch the tumour.
PNI-negative cases carry look-alike decoys drawn from the same distribution along the same kind
of fibres, but starting a gap beyond the tumour surface: they never touch the tumour (no decoy
voxel is a neighbour of a tumour voxel). Sleeves are NOT in the tumour or anatomy mask; the
label has to be read from the image. Sleeves are cut at the body outline and the image edge.
"""
